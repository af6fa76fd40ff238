"""Running a model: inference, fixed-shape decoding, the artifact format, export, model cards, timelines."""
