"""The typed schema of every command's config, and the one place a choice is checked (torch-free).

Each command's ``conf/<name>.yaml`` selects its schema first in ``defaults`` (``- schema: <name>``), so Hydra
checks types and choices while composing: an integer option given ``abc``, a ``task`` that is not a task,
a key that does not exist are refused before a program runs. The choices are Enums built from the tuples
the libraries use (``plan.TASKS``, ...), so a choice is spelled in one place; a value read from a config
is such an Enum member, which is a ``str`` equal to its name (``cfg.task == "describe"``).

Library functions that take a choice from Python callers check it with :func:`check_choice`, the only
place that words the "expected one of" message. Only the standard library is imported here, so the
torch-free scorer may use it; :func:`register` imports Hydra when a command composes its config.

The ``model`` group is typed by the dataclasses the model is built from (:mod:`affectgpt.core.model_config`,
which ``affectgpt.model.build.model_config`` reads), so the schema and the builder take the same keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field, is_dataclass
from enum import Enum
from typing import Any

from affectgpt.core import plan
from affectgpt.core.model_config import ModelSchema

MISSING = "???"  # OmegaConf's mark of a value the command line must give


class Choice(str, Enum):
    """A config choice: a ``str`` equal to its name, printed as its name."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


def choice(name: str, values) -> type[Choice]:
    return Choice(name, [(v, v) for v in values])  # type: ignore[return-value]


def values(enum: type[Enum]) -> tuple[str, ...]:
    return tuple(m.value for m in enum)


def one_of(what: str, value, allowed) -> str:
    """The message for a value that is not one of ``allowed`` (the schema's and the libraries' wording)."""
    return f"unknown {what} {value!r}; expected one of {', '.join(str(a) for a in allowed)}"


def check_choice(what: str, value, allowed) -> None:
    """ValueError naming ``what``, the value and the allowed ones unless ``value`` is one of ``allowed``."""
    allowed = values(allowed) if isinstance(allowed, type) and issubclass(allowed, Enum) else tuple(allowed)
    if value not in allowed:
        raise ValueError(one_of(what, value, allowed))


# ------------------------------------------------------------------------------------------- the choices
Task = choice("Task", plan.TASKS)                      # describe | labels
Visual = choice("Visual", plan.VISUAL_INPUTS)          # frames | faces
Dtype = choice("Dtype", plan.DTYPES)                   # float32 | bfloat16 | float16
Decoding = choice("Decoding", plan.GENERATION_PRESETS)  # greedy | official
DecodeMode = choice("DecodeMode", ("plain", "static", "graph", "compile"))  # single-clip generation loop
MixedPrecision = choice("MixedPrecision", ("no", "bf16", "fp16"))
Stage = choice("Stage", ("sft", "grpo"))
GrpoMode = choice("GrpoMode", ("direct", "think"))
GrpoTrain = choice("GrpoTrain", ("lora_adapters", "lora"))
Extract = choice("Extract", ("auto", "never"))         # features.extract
Overflow = choice("Overflow", ("error", "skip"))        # data.on_overflow
DataKind = choice("DataKind", ("synthetic", "manifest", "sources"))
Language = choice("Language", ("english", "chinese"))
SegmentMode = choice("SegmentMode", ("speech", "fixed"))
SubtitleSource = choice("SubtitleSource", ("given", "auto"))
WandbMode = choice("WandbMode", ("disabled", "offline", "online"))
Variant = choice("Variant", ("face", "frame"))          # python -m affectgpt.apps.convert
LabelMode = choice("LabelMode", ("given", "rules", "llm"))  # UniBench: how answers become labels
Extractor = choice("Extractor", ("rules", "llm"))      # scorer: how a description becomes labels
ScoreTask = choice("ScoreTask", ("open", "basic"))     # scorer: open vocabulary | + MER-UniBench's hit rate
ClueMethod = choice("ClueMethod", ("auto", "minilm", "lexical"))


# ------------------------------------------------------------------------------------ conf/train.yaml
@dataclass
class AsrSettings:
    """subtitle=auto's Whisper options (affectgpt/runtime/asr.py AsrConfig): data.asr, infer/bench/check asr."""
    model: str = "auto"                      # auto | a CTranslate2 folder / whisper .pt / whisper name
    language: str | None = None              # null: detected
    beam_size: int = 1
    no_speech_threshold: float = 0.5
    logprob_threshold: float = -1.0
    min_level_db: float = -45.0              # loudest 100 ms quieter than this: no speech


@dataclass
class DataConfig:
    """conf/data/*.yaml: one schema for the three kinds; a kind ignores the other kinds' keys."""
    kind: DataKind = MISSING                 # synthetic (generated under root) | manifest (JSONL) | sources (CSV)
    root: str = MISSING                      # the dataset folder
    seed: int = 0                            # synthetic: generator seed; sources: the mixture's draw
    n_train: int = 400                       # synthetic: clips per split
    n_val: int = 100
    n_test: int = 50
    train_manifest: str | None = None        # synthetic/manifest: JSONL files (media relative to them)
    val_manifest: str | None = None
    test_manifest: str | None = None
    language: Language = Language.english    # sources (MER2025): subtitle language
    train_sources: list[Any] | None = None   # sources: [{format, name, path, subset, split, language, ratio}]
    val_sources: list[Any] | None = None
    epoch_size: int | None = None            # sources: samples per epoch (null: all of all sources)
    visual: Visual = Visual.frames           # frames | faces (OpenFace crops openface_face/NAME/NAME.npy)
    describe_ratio: float = 0.5              # share of samples trained on the describe task
    max_length: int = 1024                   # tokens per sample
    packing: bool = False                    # padding-free rows of max_length tokens, several samples each
    on_overflow: Overflow = Overflow.error   # a prompt that leaves no room for its target
    max_bad_fraction: float = 0.01           # abort when more samples than this share fail to decode
    feature_cache: str | None = None         # frozen-encoder outputs (python -m affectgpt.recipe.features)
    subtitle: SubtitleSource = SubtitleSource.given  # given | auto: each clip's Whisper transcript, cached
    asr: AsrSettings = field(default_factory=AsrSettings)  # subtitle=auto: the ASR model and options


@dataclass
class GrpoConfig:
    group_size: int = 8                      # rollouts per prompt
    max_new_tokens: int = 32                 # rollout length limit
    temperature: float = 1.0
    top_p: float = 0.9
    epsilon: float = 0.2                     # ratio clip
    beta: float = 0.04                       # KL to the reference; 0 skips the reference forward
    scale_rewards: bool = False              # divide advantages by the group's reward std
    shuffle_rewards: bool = False            # control run: rewards permuted across the step's answers
    mode: GrpoMode = GrpoMode.direct         # direct | think (<think>...</think><answer>...</answer>)
    wheels: str | None = None                # null: the built-in lexicon | the official wheel folder
    train: GrpoTrain = GrpoTrain.lora_adapters  # lora_adapters | lora (adapters at learning rate 0)
    rewards: dict[str, float] = field(default_factory=dict)  # reward name -> weight


@dataclass
class TrainerConfig:
    """conf/trainer/*.yaml."""
    max_steps: int = MISSING                 # optimizer steps
    batch_size: int = 8                      # per process (GRPO: prompts per process)
    grad_accum: int = 1
    lr: float = 2.0e-3
    lr_adapter: float | None = None          # null = lr
    lr_lora: float | None = None             # null = lr
    lr_llm_extra: float | None = None        # fully trained LLM modules (peft modules_to_save)
    weight_decay: float = 0.05
    warmup_steps: int = 30
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    mixed_precision: MixedPrecision = MixedPrecision.no  # no | bf16 | fp16
    num_workers: int = 0                     # DataLoader workers (0: in this process)
    save_every: int = 0                      # 0 = only at the end
    keep_last: int = 2
    resume: str | None = None                # null | auto | PATH
    trust_pickle: bool = False               # resume a DeepSpeed checkpoint from outside output_dir
    init_from: str | None = None             # PATH: start from that checkpoint's trainable weights
    stop_at_step: int | None = None          # stop after this step with a checkpoint
    stop_after_minutes: float | None = None  # stop with a checkpoint once this much wall time has passed
    log_every: int = 10
    peak_tflops: float | None = None         # MFU in the log (null: by CUDA device name)
    eval_every: int = 0
    max_bad_steps: int = 3                   # abort after this many non-finite losses in a row
    deepspeed: str | None = None             # a DeepSpeed JSON for a plain python train.py
    collective_timeout_s: int = 1800         # a collective waiting longer raises instead of hanging
    find_unused_parameters: bool = False     # DDP: some batches leave an adapter unused
    standardize_samples: int = 256
    stage: Stage = Stage.sft                 # sft (supervised) | grpo (reinforcement, same loop)
    grpo: GrpoConfig = field(default_factory=GrpoConfig)


@dataclass
class EvalConfig:
    max_samples: int = 0                     # 0 = the whole validation split
    batch_size: int = 16
    max_new_tokens: int = 96


@dataclass
class FeaturesConfig:
    cache_dir: str | None = None             # null: frozen encoders online every step; a folder: cached features
    extract: Extract = Extract.auto          # auto: encode missing clips first | never: refuse missing clips
    dtype: Dtype = Dtype.float32             # stored dtype
    shard_size: int = 256                    # clips per safetensors shard
    batch_size: int = 16
    splits: list[str] = field(default_factory=lambda: ["train"])  # for python -m affectgpt.recipe.features


@dataclass
class WandbConfig:
    mode: WandbMode | None = None            # null: WANDB_MODE if set, else online with WANDB_API_KEY, else offline
    project: str = "affectgpt"
    name: str | None = None


@dataclass
class TrainConfig:
    """python train.py (and the commands built on it: features, summary, convert)."""
    model: ModelSchema = field(default_factory=ModelSchema)  # conf/model/NAME.yaml
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    output_dir: str = MISSING                # everything the run writes
    seed: int = 0
    device: str = "auto"                     # auto | cpu
    eval: EvalConfig = field(default_factory=EvalConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)


@dataclass
class SummaryConfig(TrainConfig):
    """python -m affectgpt.apps.summary."""
    tokens: int = 2048                       # tokens per micro-batch for the memory estimate
    target_tokens: int = 512                 # target tokens per micro-batch
    json: bool = False                       # print JSON instead of the table


@dataclass
class ConvertConfig(TrainConfig):
    """python -m affectgpt.apps.convert."""
    official: str = MISSING                  # the released .pth
    output: str = MISSING                    # the checkpoint folder to write; must not exist
    variant: Variant = Variant.face          # face: OpenFace crops | frame: video frames


# ------------------------------------------------------------------------------------ the other commands
@dataclass
class SegmentSettings:
    mode: SegmentMode = SegmentMode.speech   # speech (energy-based) | fixed (windows of `window` seconds)
    window: float = 2.0
    threshold_db: float | None = None        # null: adaptive
    min_db: float = -50.0
    min_silence: float = 0.4
    min_speech: float = 0.3
    pad: float = 0.1
    max_seconds: float = 30.0


@dataclass
class LoadOptions:
    """What every command that loads a checkpoint or export takes."""
    checkpoint: str = MISSING                # a training checkpoint or an export
    device: str = "auto"                     # auto | cpu | cuda | cuda:N
    dtype: Dtype | None = None               # null: the artifact's
    merge_lora: Any = "auto"                 # auto (on CUDA) | true | false
    trust_remote_code: bool = False          # run Python code shipped with the model folder
    verify_hashes: bool = True               # check an export's weight files against its sha256


@dataclass
class InferConfig(LoadOptions):
    """python infer.py."""
    video: str | None = None
    audio: str | None = None                 # a separate audio file; overrides the video's own track
    subtitle: str = ""                       # auto: transcribe the clip's audio
    subtitle_file: str | None = None         # UTF-8 text file; replaces subtitle=
    manifest: str | None = None
    output: str | None = None
    task: Task = Task.describe               # describe | labels
    visual: Visual | None = None             # null: the checkpoint's data.visual
    decode: DecodeMode = DecodeMode.plain    # single clip: plain | static | graph | compile
    batch_size: int = 8                      # manifest mode
    num_workers: int = 1                     # manifest mode: DataLoader workers
    score: bool = False                      # manifest mode: score the output afterwards
    score_output: str | None = None
    show_prompt: bool = False
    profile: bool = False
    seed: int = 0
    decoding: Decoding | None = None         # a generation preset: greedy | official
    max_new_tokens: int | None = None
    do_sample: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    num_beams: int | None = None
    timeline: bool = False                   # one row per utterance segment
    segment: SegmentSettings = field(default_factory=SegmentSettings)
    asr: AsrSettings = field(default_factory=AsrSettings)


@dataclass
class DemoConfig(LoadOptions):
    """python demo.py."""
    host: str = "127.0.0.1"                  # any other address prints a warning
    port: int = 7860
    max_queue: int = 16                      # requests waiting beyond this are turned away
    max_file_mb: int = 200                   # largest upload accepted
    visual: Visual | None = None             # null: the checkpoint's data.visual
    seed: int = 0                            # reseeded before every request


@dataclass
class ExportConfig:
    """python -m affectgpt.runtime.export."""
    checkpoint: str = MISSING
    output: str = MISSING
    merge: bool = False                      # false: adapter bundle; true: LLM with LoRA merged
    dtype: Dtype | None = None               # null: the checkpoint's
    trust_remote_code: bool = False


@dataclass
class BenchConfig(LoadOptions):
    """python -m affectgpt.apps.bench."""
    checkpoint: Any = MISSING                # one folder or a list of them
    root: str = MISSING                      # folder with the authors' *-process folders
    output: str = MISSING
    sets: list[str] = field(default_factory=list)  # []: every set found under root
    visual: Visual | None = None
    check_sizes: bool = True                 # the published test-split sizes are asserted
    labels: LabelMode = LabelMode.rules      # rules | given | llm
    llm: str | None = None                   # local HF causal LM folder for labels=llm
    wheels: str | None = None                # emotion-wheel folder; null: built-in lexicon
    decoding: Decoding = Decoding.greedy     # greedy | official
    seed: int = 0
    max_new_tokens: int | None = None        # null: the preset's
    batch_size: int = 8
    num_workers: int = 1
    score: bool = True                       # score and print the table after inference
    subtitle: SubtitleSource = SubtitleSource.given  # given | auto (Whisper transcript)
    asr: AsrSettings = field(default_factory=AsrSettings)


@dataclass
class AblationConfig:
    """python -m affectgpt.apps.ablation."""
    checkpoint: str = MISSING
    manifest: str = MISSING
    drop: list[str] = field(default_factory=lambda: ["video", "audio", "subtitle"])  # conditions besides full
    output: str | None = None                # also write the report as JSON here
    task: Task = Task.describe
    batch_size: int = 16
    max_new_tokens: int | None = None        # null: 96 for describe, 24 for labels
    max_samples: int = 0                     # 0 = the whole manifest
    untrained: bool = False                  # also score the untrained model
    device: str = "cpu"
    trust_remote_code: bool = False
    verify_hashes: bool = True


@dataclass
class CheckConfig:
    """python -m affectgpt.apps.check."""
    path: str = MISSING                      # a manifest, an EMER .csv, a data config .yaml or a dataset folder
    language: Language = Language.english    # subtitle language of a MER2025 release
    decode: bool = True                      # false: only check that the media files exist
    workers: int = 1
    json: str | None = None                  # also write the statistics to this file
    train_config: str | None = None          # rows too long for its max_length are problems
    subtitle: SubtitleSource = SubtitleSource.given  # given | auto: every clip's Whisper transcript
    output: str | None = None                # subtitle=auto: write a manifest with the transcripts here
    device: str = "cpu"                      # subtitle=auto: where Whisper runs (cpu | cuda | cuda:N)
    asr: AsrSettings = field(default_factory=AsrSettings)


@dataclass
class FacesConfig:
    """python -m affectgpt.data.faces."""
    input: str = MISSING                     # a video, a folder of videos, or a manifest
    output: str = MISSING                    # the dataset root
    workers: int = 1
    fps: float | None = None                 # null: every frame
    size: int = 112                          # crop side in pixels
    mask: bool = True                        # black outside the face
    detect_size: int = 480                   # frames are resized to this shorter side for detection


@dataclass
class SyntheticConfig:
    """python -m affectgpt.apps.synthetic."""
    root: str = MISSING
    seed: int = 0
    n_train: int = 400
    n_val: int = 100
    n_test: int = 50
    size: int = 64                           # frame width and height
    fps: int = 10
    seconds: float = 2.0
    sample_rate: int = 16000
    workers: int | None = None               # null: all cores


@dataclass
class ScoreConfig:
    """python -m affectgpt.eval."""
    pred: str = MISSING                      # predictions: JSONL or CSV
    gold: str = MISSING                      # gold labels: JSONL or CSV
    wheels: str | None = None                # lexicon folder (official wheel files); null: built-in
    extractor: Extractor = Extractor.rules   # rules | llm
    llm: str | None = None                   # local HF causal LM folder for extractor=llm
    llm_cache: str | None = None             # JSONL cache of LLM answers
    clue: ClueMethod = ClueMethod.auto       # clue matching: auto | minilm | lexical
    task: ScoreTask = ScoreTask.open         # open | basic
    out: str | None = None                   # write the metrics JSON here
    plot: str | None = None                  # draw the bars to FILE; "" (plot=): beside out, as its .png


@dataclass
class UnibenchScoreConfig:
    """python -m affectgpt.apps.unibench_score."""
    gold: str = MISSING                      # folder of *-process folders or <set>_test.jsonl files
    pred: str = MISSING                      # <set>.jsonl[.gz], a folder of them, or a runner output folder
    wheels: str | None = None
    labels: LabelMode = LabelMode.given      # given | rules | llm
    llm: str | None = None
    llm_cache: str | None = None
    out: str | None = None
    check_sizes: bool = True                 # false: accept *-process test splits of another size


@dataclass
class PlotsConfig:
    """python -m affectgpt.apps.plots."""
    results: list[str] = MISSING             # metrics JSON files; several scorer results are compared by file name
    out: str = MISSING                       # image file to write (.png, .svg, .pdf)


SCHEMAS = {"train": TrainConfig, "summary": SummaryConfig, "convert": ConvertConfig, "infer": InferConfig,
           "demo": DemoConfig, "export": ExportConfig, "bench": BenchConfig, "ablation": AblationConfig,
           "check": CheckConfig, "faces": FacesConfig, "synthetic": SyntheticConfig, "score": ScoreConfig,
           "unibench_score": UnibenchScoreConfig, "plots": PlotsConfig}


def register() -> None:
    """Store the schemas in Hydra's ConfigStore as the group ``schema`` (package ``_global_``): a command's
    config selects its own first in ``defaults`` (``- schema: infer``); the commands built on conf/train.yaml
    replace train's (``- override schema: convert``). The groups (``model``, ``data``, ``trainer``) are typed through
    their fields in TrainConfig. Once per process: storing converts every dataclass to OmegaConf anew (a quarter
    of a second, paid by each compose when it stored them again)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    stored = store.repo.get("schema", {})
    for name, node in SCHEMAS.items():
        if f"{name}.yaml" not in stored:
            store.store(group="schema", name=name, node=node, package="_global_")


def expected(node) -> str:
    """What an OmegaConf node of a schema takes, in a message's words."""
    from omegaconf import BooleanNode, EnumNode, FloatNode, IntegerNode, ListConfig

    if isinstance(node, EnumNode):
        return "one of " + ", ".join(values(node._metadata.ref_type))
    kinds = ((BooleanNode, "true or false"), (IntegerNode, "an integer"), (FloatNode, "a number"),
             (ListConfig, "a list"))
    return next((words for cls, words in kinds if isinstance(node, cls)), "a single value")


def compose(conf_dir, name: str, overrides: list[str]):
    """conf_dir/``name``.yaml composed with its schema and ``overrides``; ValueError with Hydra's first line
    (its error is the cause)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register()
    try:
        with initialize_config_dir(str(conf_dir), version_base="1.3"):
            return compose(name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise ValueError(f"conf/{name}.yaml with {' '.join(overrides)}: {str(e).strip().splitlines()[0]}") from e


def parse_override(arg: str):
    """Hydra's parse of one ``key=value`` argument; ValueError naming it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create().parse_overrides([arg])[0]
    except Exception as e:  # noqa: BLE001 -- Hydra's grammar error: its first line
        raise ValueError(f"argument {arg!r}: not a valid override ({str(e).splitlines()[0]}); quote text as "
                         "key='...'") from None


def literal(value: str) -> str:
    """``value`` as OmegaConf text that reads back as ``value`` (``${`` is not an interpolation)."""
    import re

    return re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", value)


def node(cfg, key: str):
    """The OmegaConf node at dotted ``key`` of ``cfg``, or None where there is none."""
    for part in key.split("."):
        cfg = cfg._get_node(part) if hasattr(cfg, "keys") and part in cfg.keys() else None
    return cfg


def checked_overrides(pairs, groups: list[str], base, conf_dir, name: str, prog: str) -> list[str]:
    """The overrides to compose conf/``name``.yaml with, from ``pairs`` (argument, parsed Hydra override):
    ``groups`` select config files of conf_dir, the others are checked against ``base`` (the config with the
    groups applied) by :func:`refusal`; ``key=a,b`` and ``key=a`` set a list key to [a,b] and [a].
    ValueError names the first bad argument."""
    from omegaconf import ListConfig

    final = []
    for arg, ov in pairs:
        (lhs, _, rhs), key, value = arg.partition("="), ov.key_or_group, ov.value()
        if arg in groups:
            choices = sorted(p.stem for p in (conf_dir / key).glob("*.yaml"))
            if value not in [None, *choices]:
                raise ValueError(f"argument {arg!r}: no conf/{key}/{value}.yaml (choices: {', '.join(choices)})")
            final.append(arg)
            continue
        where, parent = node(base, key), node(base, key.rpartition(".")[0]) if "." in key else base
        why = refusal(ov, where, f"conf/{name}.yaml", prog, parent)
        if why:
            raise ValueError(f"argument {arg!r}: {why}")
        listed = isinstance(where, ListConfig) and not isinstance(value, list)
        final.append(f"{lhs}=[{rhs}]" if listed else arg)
    return final


def value_refusal(error: Exception, pairs, base) -> str | None:
    """The message for a value that composing refused (``error`` raised by Hydra over OmegaConf's
    ValidationError): the argument, what its key takes and the default; None when no argument is to blame."""
    from omegaconf import OmegaConf

    cause = error.__cause__
    key = getattr(getattr(cause, "__cause__", None), "full_key", None) or getattr(cause, "full_key", None)
    arg = next((a for a, ov in pairs if key and ov.key_or_group == key), None)
    if arg is None:
        return None
    default = OmegaConf.select(base, key, throw_on_resolution_failure=False)
    return f"argument {arg!r}: {key} expects {expected(node(base, key))} (default {default})"


def missing(cfg, prefix: str = "") -> list[str]:
    """The dotted keys of ``cfg`` still ``???`` (MISSING) after composing, in the config's order: the arguments
    a command must be given."""
    from omegaconf import DictConfig, OmegaConf

    out = []
    for key in cfg.keys():
        child = cfg._get_node(key)
        if OmegaConf.is_missing(cfg, key):
            out.append(f"{prefix}{key}")
        elif isinstance(child, DictConfig) and not child._is_none():
            out += missing(child, f"{prefix}{key}.")
    return out


def refusal(ov, node, where: str, prog: str, parent=None) -> str | None:
    """Why the parsed Hydra override ``ov`` cannot set the schema node ``node`` (None: the key does not exist)
    of the config ``where``, beyond what composing checks: None when it can. ``+key=value`` adds a key only to a
    free dictionary (``parent``, the node above ``key``), never to a schema's dataclass (Hydra would)."""
    from omegaconf import BooleanNode, DictConfig, ListConfig

    key, value = ov.key_or_group, ov.value()
    if key.startswith("hydra") or ov.is_delete():
        return "deleting keys is not supported" if ov.is_delete() else f"hydra.* is not used by {prog}"
    schema_parent = is_dataclass(getattr(getattr(parent, "_metadata", None), "object_type", None))
    if ov.is_add() != (node is None) or (node is None and schema_parent):
        return f"{key} exists already; set it without '+'" if node is not None else f"unknown key {key!r} in {where}"
    if ov.is_sweep_override() and not isinstance(node, ListConfig):
        return f"a comma makes a list, but {key} takes one value (quote it as {key}='...' if it is text)"
    if isinstance(node, DictConfig) and not isinstance(value, dict):
        return f"{key} is a group of options; set its fields as {key}.NAME=VALUE"
    if isinstance(node, BooleanNode) and not isinstance(value, bool | None):  # OmegaConf would take yes/no/1/0
        return f"{key} expects true or false"
    return None
