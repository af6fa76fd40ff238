"""Samples → decoded clips → batches of token ids, loss labels and modality inputs.

``ClipDataset`` decodes media in DataLoader workers and never swaps a broken clip for another:
it returns an item with ``error`` set, and ``Collator`` drops it and lists it in ``batch["bad"]``
so the trainer can count it. ``Collator`` renders the chat template, puts one placeholder per
modality token (their number comes from the model's ``TokenPlan``) and masks the prompt with
-100. With ``packing`` a training batch is padding-free: its samples are laid end to end in rows
of ``max_length`` (see ``pack_rows``), with per-sample position ids that restart at 0.
"""

from __future__ import annotations

import torch

from affectgpt.core.errors import InputError
from affectgpt.core.plan import IGNORE_INDEX, SAMPLE_RATE, VISUAL_INPUTS, TokenPlan
from affectgpt.data.frames import resize_crop
from affectgpt.data.manifest import Sample
from affectgpt.data.prompts import (
    OFFICIAL_TARGET_END,
    build_messages,
    end_of_turn_id,
    official_prompt,
    pick_task,
    render_prompt,
    target_text,
)


class SampleError(InputError, ValueError):
    """A sample that cannot become a training example; the message names it."""


def worker_init(_: int) -> None:
    """DataLoader workers decode and resize with one thread: OpenMP threads in several processes
    on few cores spin against each other and slow training down several times."""
    torch.set_num_threads(1)


class ClipDataset(torch.utils.data.Dataset):
    """Decodes one sample per item. Media failures become ``{"error": ...}`` items, never swaps."""

    def __init__(self, samples: list[Sample], plan: TokenPlan, describe_ratio: float = 0.5, seed: int = 0,
                 task: str | None = None, sample_rate: int = SAMPLE_RATE, features=None, visual: str = "frames",
                 crop_faces: bool = False):
        """``features``: a ``affectgpt.recipe.features.FeatureStore``; items then carry the frozen encoders'
        outputs (``video_feats``, ``audio_feats``) instead of decoded media. ``visual="faces"`` feeds
        the sample's OpenFace crops (``media.face_file``) instead of video frames; a missing face file
        makes the sample an error item, or with ``crop_faces`` (inference) the faces are cropped from the
        video on the fly (``faces.crop_clip``; callers say so, see ``faces.on_the_fly_note``)."""
        if visual not in VISUAL_INPUTS:
            raise ValueError(f"visual must be one of {VISUAL_INPUTS}, got {visual!r}")
        self.samples, self.plan, self.describe_ratio, self.seed = samples, plan, describe_ratio, seed
        self.task, self.sample_rate, self.epoch, self.features = task, sample_rate, 0, features
        self.visual, self.crop_faces = visual, crop_faces

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int, samples: list[Sample] | None = None) -> None:
        """The epoch (it picks each item's task) and, for a training set re-drawn per epoch (a mixture
        of sources), that epoch's samples: as many as before, since the sampler's batches are fixed."""
        if samples is not None:
            if len(samples) != len(self.samples):
                raise ValueError(f"epoch {epoch} has {len(samples)} samples, the dataset {len(self.samples)}; "
                                 "every epoch of a mixture must have the same size (data.epoch_size)")
            self.samples = samples
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict:
        s = self.samples[i]
        task = self.task or pick_task(self.describe_ratio, self.seed, self.epoch, i,
                                      bool(s.description), s.emotions is not None)
        item = {"name": s.name, "subtitle": s.subtitle, "task": task, "error": None, "frames": None, "audio": None,
                "visual": self.visual}
        if self.task is None:  # training: the target must exist
            item["target"] = target_text(task, s.description, s.emotions, self.plan.prompt_style)
        if self.features is not None:
            return self._cached(s, item)
        from affectgpt.data.media import (  # PyAV only where clips are decoded (not on cached features)
            MediaError,
            load_media,
        )

        try:
            max_audio = self.plan.audio_max_samples / self.sample_rate if self.plan.has_audio else 1.0
            if self.visual == "faces":
                media = self._faces(s, max_audio)
            elif "start" in s.extra:  # a part of a longer file (a timeline segment)
                media = self._range(s, max_audio)
            else:
                media = load_media(s.video, s.audio, n_frames=self.plan.frames, sample_rate=self.sample_rate,
                                   max_audio_seconds=max_audio, frame_sampling=self.plan.frame_sampling)
        except MediaError as e:
            item["error"] = str(e)
            return item
        if media.has_video and self.plan.has_vision:
            item["frames"] = resize_crop(torch.from_numpy(media.frames), self.plan.image_size,
                                         self.plan.interpolation, self.plan.resize_mode)
        if media.has_audio and self.plan.has_audio:
            item["audio"] = torch.from_numpy(media.audio)
        if item["frames"] is None and item["audio"] is None:
            item["error"] = f"{s.video or s.audio}: neither a usable video nor an audio stream"
        return item

    def _range(self, s: Sample, max_audio: float):
        """The sample's ``start``..``end`` seconds of its file(s), decoded by seeking (``stream.load_range``)."""
        from affectgpt.data.media import MediaError  # lazy: PyAV only where clips are decoded
        from affectgpt.data.stream import load_range  # lazy: PyAV only where clips are decoded

        try:
            start, end = float(s.extra["start"]), float(s.extra["end"])
        except (KeyError, TypeError, ValueError):
            raise MediaError(s.video or s.audio, f"sample {s.name!r}: 'start' and 'end' must be seconds, found "
                             f"{s.extra.get('start')!r} and {s.extra.get('end')!r}") from None
        media = load_range(s.video, s.audio, start, end, n_frames=self.plan.frames, sample_rate=self.sample_rate)
        if media.audio is not None:
            media.audio = media.audio[: int(max_audio * self.sample_rate)]
        return media

    def _faces(self, s: Sample, max_audio: float):
        """Face crops in place of frames; audio from the audio file, else the video's track."""
        from affectgpt.data.media import MediaError, face_file, load_faces, load_media  # lazy: PyAV, as above

        path = face_file(s.name, s.video, s.extra.get("faces"))
        if self.crop_faces and s.video and (path is None or not path.is_file()):
            from affectgpt.data.faces import crop_clip  # lazy: PyAV, as above

            faces = crop_clip(s.video, self.plan.frames)
        elif path is None:
            raise MediaError(s.name, "visual=faces needs a face file ('faces' in the manifest) or a video path")
        else:
            faces = load_faces(path, self.plan.frames)
        media = load_media(None if s.audio else s.video, s.audio, n_frames=1, sample_rate=self.sample_rate,
                           max_audio_seconds=max_audio)
        media.frames = faces
        return media

    def _cached(self, s: Sample, item: dict) -> dict:
        entry = self.features.get(s.name)
        if entry["error"]:  # the clip failed to decode at extraction time: a bad sample, as online
            item["error"] = entry["error"]
            return item
        item["video_feats"] = entry["video"] if self.plan.has_vision else None
        item["audio_feats"] = entry["audio"] if self.plan.has_audio else None
        item["audio_samples"] = entry["audio_samples"]
        if item["video_feats"] is None and item["audio_feats"] is None:
            item["error"] = f"{s.video or s.audio}: neither a usable video nor an audio stream"
        return item


def _has_video(item: dict) -> bool:
    return item.get("frames") is not None or item.get("video_feats") is not None


def _audio_samples(item: dict) -> int | None:
    """Waveform length in samples (from the decoded audio, or recorded with cached features)."""
    if item.get("audio") is not None:
        return item["audio"].shape[0]
    return item["audio_samples"] if item.get("audio_feats") is not None else None


def official_bos_id(tok) -> int:
    """The bos the released code gives Qwen2.5 (``<|im_start|>``), else the tokenizer's own."""
    vocab = tok.get_vocab()
    bos = vocab.get("<|im_start|>", tok.bos_token_id)
    if bos is None:
        raise ValueError("the official prompt style needs a bos token (<|im_start|> or the tokenizer's bos)")
    return int(bos)


def pack_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """Sample indices per row: each sample, in the given order, goes to the first row with room
    (first fit). A pure function of the lengths in data order, so a resumed run packs the same."""
    rows: list[list[int]] = []
    free: list[int] = []
    for j, n in enumerate(lengths):
        if n > capacity:
            raise ValueError(f"sample {j} has {n} tokens, more than a packed row of {capacity}")
        for r, room in enumerate(free):
            if n <= room:
                rows[r].append(j)
                free[r] -= n
                break
        else:
            rows.append([j])
            free.append(capacity - n)
    return rows


class Collator:
    """Items → batch. Training pads right and labels the target; generation pads left.

    ``packing`` (training only): rows of up to ``max_length`` tokens hold several samples each;
    the batch gains ``position_ids`` (0.. per sample; a row's padding tail is one more segment,
    so it attends only to itself), ``sample_row`` (the row of each sample) and ``segment``
    (per token: the index of its sample in ``names``, -1 for padding). Per sample the tokens,
    labels and modality inputs equal the unpacked batch's; the model keeps attention inside
    each sample."""

    def __init__(self, tokenizer, plan: TokenPlan, max_length: int = 1024, train: bool = True,
                 on_overflow: str = "error", system: str | None = None, packing: bool = False):
        if on_overflow not in ("error", "skip"):
            raise ValueError(f"on_overflow must be 'error' or 'skip', got {on_overflow!r}")
        if packing and not train:
            raise ValueError("data.packing applies to training batches only (generation pads left, one clip per row)")
        self.tok, self.plan, self.max_length, self.train = tokenizer, plan, max_length, train
        self.on_overflow, self.system, self.packing = on_overflow, system, packing
        self.eos = end_of_turn_id(tokenizer)  # a target ends as the template ends an assistant turn
        self.pad = tokenizer.pad_token_id
        self.official = plan.prompt_style == "official"
        if self.official:  # the released format: eos ends a target and pads; bos starts a training row
            if system is not None:
                raise ValueError("the official prompt style has no system prompt")
            self.eos = self.pad = tokenizer.eos_token_id
            self.bos = official_bos_id(tokenizer)

    def prompt_ids(self, subtitle: str, task: str, n_video: int, n_audio: int, visual: str = "frames") -> list[int]:
        n_fusion = self.plan.fusion_tokens if (n_video or n_audio) else 0
        if self.official:
            text = official_prompt(subtitle, task, n_video, n_audio, n_fusion, visual)
            return ([self.bos] if self.train else []) + self.tok(text, add_special_tokens=False).input_ids
        kwargs = {} if self.system is None else {"system": self.system}
        msgs = build_messages(subtitle, task, n_video, n_audio, n_fusion, **kwargs)
        text = render_prompt(self.tok, msgs)
        return self.tok(text, add_special_tokens=False).input_ids

    def encode(self, item: dict) -> tuple[list[int], list[int]]:
        n_video = self.plan.video_tokens if _has_video(item) else 0
        n_samples = _audio_samples(item)
        n_audio = self.plan.audio_tokens(n_samples) if n_samples is not None else 0
        prompt = self.prompt_ids(item["subtitle"], item["task"], n_video, n_audio, item.get("visual", "frames"))
        if not self.train:
            if len(prompt) > self.max_length:
                raise SampleError(
                    f"sample {item['name']!r}: prompt of {len(prompt)} tokens exceeds max_length={self.max_length}"
                )
            return prompt, []
        answer = item["target"] + (OFFICIAL_TARGET_END if self.official else "")
        target = self.tok(answer, add_special_tokens=False).input_ids + [self.eos]
        room = self.max_length - len(prompt)
        if room < 1:
            # Modality tokens are never dropped and a target is never fully masked.
            raise SampleError(
                f"sample {item['name']!r}: prompt of {len(prompt)} tokens ({n_video} video, {n_audio} audio) "
                f"leaves no room for the target within max_length={self.max_length}"
            )
        return prompt, target[:room]

    def __call__(self, items: list[dict]) -> dict:
        bad = [(it["name"], it["error"]) for it in items if it["error"]]
        rows, kept = [], []
        for it in items:
            if it["error"]:
                continue
            try:
                rows.append(self.encode(it))
                kept.append(it)
            except SampleError as e:
                if self.on_overflow == "error":
                    raise
                bad.append((it["name"], str(e)))
        batch = {"names": [it["name"] for it in kept], "tasks": [it["task"] for it in kept], "bad": bad}
        if not kept:
            return batch
        if self.packing:
            batch.update(self._packed(rows))
        else:
            batch.update(self._padded(rows))
        present = [_has_video(it) for it in kept]
        batch["video_present"] = torch.tensor(present)
        key = "video_feats" if any(it.get("video_feats") is not None for it in kept) else "frames"
        if any(present):  # absent rows are zeros; the model drops their tokens
            ref = next(it[key] for it in kept if it.get(key) is not None)
            batch[key] = torch.stack([it[key] if it.get(key) is not None else torch.zeros_like(ref) for it in kept])
        if any("audio_feats" in it for it in kept):
            batch["audio_feats"] = [it.get("audio_feats") for it in kept]
        else:
            batch["audio"] = [it["audio"] for it in kept]
        return batch

    def _padded(self, rows: list[tuple[list[int], list[int]]]) -> dict:
        """One sample per row: training pads right, generation pads left."""
        length = max(len(p) + len(t) for p, t in rows)
        n = len(rows)
        ids = torch.full((n, length), self.pad, dtype=torch.long)
        mask = torch.zeros((n, length), dtype=torch.long)
        labels = torch.full((n, length), IGNORE_INDEX, dtype=torch.long)
        for i, (p, t) in enumerate(rows):
            seq = torch.tensor(p + t, dtype=torch.long)
            if self.train:
                ids[i, : len(seq)], mask[i, : len(seq)] = seq, 1
                labels[i, len(p) : len(seq)] = seq[len(p) :]
            else:
                ids[i, length - len(seq) :], mask[i, length - len(seq) :] = seq, 1
        out = {"input_ids": ids, "attention_mask": mask}
        if self.train:
            out["labels"] = labels
        return out

    def _packed(self, rows: list[tuple[list[int], list[int]]]) -> dict:
        """Samples end to end in rows of at most ``max_length`` tokens (``pack_rows``)."""
        lengths = [len(p) + len(t) for p, t in rows]
        layout = pack_rows(lengths, self.max_length)
        length = max(sum(lengths[j] for j in row) for row in layout)
        r = len(layout)
        ids = torch.full((r, length), self.pad, dtype=torch.long)
        mask = torch.zeros((r, length), dtype=torch.long)
        labels = torch.full((r, length), IGNORE_INDEX, dtype=torch.long)
        positions = torch.zeros((r, length), dtype=torch.long)
        segment = torch.full((r, length), -1, dtype=torch.long)
        sample_row = torch.zeros(len(rows), dtype=torch.long)
        for i, row in enumerate(layout):
            at = 0
            for j in row:
                p, t = rows[j]
                end = at + len(p) + len(t)
                ids[i, at:end] = torch.tensor(p + t, dtype=torch.long)
                mask[i, at:end] = 1
                # The prompt (never empty) is masked, so no label predicts across a sample boundary.
                labels[i, at + len(p) : end] = torch.tensor(t, dtype=torch.long)
                positions[i, at:end] = torch.arange(end - at)
                segment[i, at:end] = j
                sample_row[j] = i
                at = end
            positions[i, at:] = torch.arange(length - at)  # padding: a segment of its own
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, "position_ids": positions,
                "segment": segment, "sample_row": sample_row}
