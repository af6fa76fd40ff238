"""Face crops from any video, in the layout of the MER releases' OpenFace crops.

``python -m affectgpt.apps.faces input=VIDEO|DIR|MANIFEST output=ROOT [workers=N]`` writes
``ROOT/openface_face/NAME/NAME.npy``: uint8 [T, 112, 112, 3] in **BGR** order (the MER toolkit
reads OpenFace's images with ``cv2.imread``; the released AffectGPT was trained on them as stored),
one aligned crop of the main (largest) face per video frame in which a face is found, like
OpenFace ``FeatureExtraction`` with its defaults. ``media.load_faces`` then samples 8 of them.

Detector: dlib's HOG face detector (compiled into dlib) and its 68-point landmark model, the same
68-point markup OpenFace aligns with; the weights come from the registry package
``face_recognition_models`` (see docs/faces.md for the choice). Alignment follows OpenFace's
``AlignFaceMask``: a similarity transform (rotation + scale) fitted on OpenFace's 24 rigid points
(face outline, nose, eye corners) to a mean face, the centroid of the 68 points at the crop centre,
and, by default, the pixels outside the face (landmark hull with the brows raised) set to black.
The mean face is dlib's own (read from the model file); its size is set so the jaw spans
``JAW_FRACTION`` of the crop. The remaining difference to OpenFace is written in docs/faces.md.

A clip without any face is a counted row in ``ROOT/faces_report.jsonl`` and the summary, and no
``.npy`` is written for it. Clips whose ``.npy`` exists and is valid are skipped (resumable).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from affectgpt.core.fileio import atomic_write
from affectgpt.data.manifest import read_manifest
from affectgpt.data.media import FACE_DIR, MediaError, _check_file, _open, face_file, load_media

log = logging.getLogger(__name__)

FACE_SIZE = 112  # OpenFace's -simsize default
JAW_FRACTION = 0.9  # jaw width (landmark 0 to 16) / crop width; OpenFace's 0.7 x PDM mean shape, see docs
# OpenFace's rigid points (extract_rigid_points): face outline 1-4 and 12-15, nose, eye corners and lower lids
RIGID = np.array([1, 2, 3, 4, 12, 13, 14, 15, 27, 28, 29, 31, 32, 33, 34, 35, 36, 39, 40, 41, 42, 45, 46, 47])
# OpenFace raises the jaw ends and brows by 30 px (at 112 px) before masking, to keep the forehead
RAISED = np.array([0, 16, *range(17, 27)])
RAISE_PX = 30 / 112
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv", ".m4v", ".mpg", ".mpeg", ".wmv")


class FaceModelError(RuntimeError):
    """The detector's weights are not installed."""


def model_dir() -> Path:
    """The folder of ``face_recognition_models`` (found without importing it: its ``__init__``
    needs ``pkg_resources``, which recent setuptools no longer ship)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelError("face crops need dlib and its models: pip install -e '.[faces]' "
                             "(dlib-bin, face_recognition_models)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    if not (folder / "shape_predictor_68_face_landmarks.dat").is_file():
        raise FaceModelError(f"{folder}: shape_predictor_68_face_landmarks.dat is missing; "
                             "reinstall face_recognition_models")
    return folder


def _dlib_int(data: bytes, pos: int) -> tuple[int, int]:
    """One integer of dlib's serialization: a byte (bit 7 sign, low 4 bits length) then little-endian bytes."""
    head = data[pos]
    n = head & 0x0F
    value = int.from_bytes(data[pos + 1:pos + 1 + n], "little")
    return (-value if head & 0x80 else value), pos + 1 + n


@lru_cache(maxsize=1)
def mean_shape(path: str) -> np.ndarray:
    """float [68, 2]: dlib's shape predictor's initial (mean) shape, in units of the detection box.
    The file starts with a version int, then the shape as a matrix (negated rows, cols) of floats
    each stored as mantissa and exponent integers."""
    data = Path(path).read_bytes()[:4096]
    version, pos = _dlib_int(data, 0)
    rows, pos = _dlib_int(data, pos)
    cols, pos = _dlib_int(data, pos)
    if version != 1 or abs(rows) != 136 or abs(cols) != 1:
        raise FaceModelError(f"{path}: expected a 68-point dlib shape predictor (version 1, 136x1 mean shape), "
                             f"found version {version}, {abs(rows)}x{abs(cols)}")
    values = []
    for _ in range(136):
        mantissa, pos = _dlib_int(data, pos)
        exponent, pos = _dlib_int(data, pos)
        values.append(mantissa * 2.0 ** exponent)
    return np.array(values, dtype=np.float64).reshape(68, 2)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x2 scale-rotation A (no reflection) that best maps mean-centred ``src`` points onto ``dst``:
    scale = ratio of RMS radii, rotation by Kabsch, as OpenFace's AlignShapesWithScale."""
    s = src - src.mean(0)
    d = dst - dst.mean(0)
    rs, rd = np.sqrt((s ** 2).sum() / len(s)), np.sqrt((d ** 2).sum() / len(d))
    u, _, vt = np.linalg.svd((s / rs).T @ (d / rd))
    fix = np.diag([1.0, np.sign(np.linalg.det(vt.T @ u.T))])
    return (rd / rs) * (vt.T @ fix @ u.T)


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (monotone chain), counter-clockwise."""
    pts = sorted(map(tuple, points))

    def half(seq):
        out: list = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]

    return np.array(half(pts) + half(pts[::-1]))


class FaceCropper:
    """Finds the main face of an RGB frame and returns its aligned crop (RGB, ``size`` x ``size``).

    ``detect_size``: frames are resized so the shorter side has this many pixels for detection
    (HOG finds faces of about 80 px and up, so a face must span about 1/6 of the frame height);
    landmarks are fitted on the full frame. ``mask``: black outside the face, as OpenFace's default."""

    def __init__(self, size: int = FACE_SIZE, mask: bool = True, detect_size: int = 480):
        import dlib  # optional: the [faces] extra (only this class needs it)

        folder = model_dir()
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(folder / "shape_predictor_68_face_landmarks.dat"))
        self.size, self.mask, self.detect_size = int(size), bool(mask), int(detect_size)
        shape = mean_shape(str(folder / "shape_predictor_68_face_landmarks.dat"))
        scale = JAW_FRACTION * self.size / np.linalg.norm(shape[16] - shape[0])
        self.template = (shape - shape.mean(0)) * scale  # crop coordinates around the centre
        self._rect = dlib.rectangle

    def landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        """float [68, 2] (x, y) of the largest face, or None when the detector finds none."""
        h, w = rgb.shape[:2]
        f = self.detect_size / min(h, w)
        small = rgb if abs(f - 1) < 1e-3 else np.asarray(
            Image.fromarray(rgb).resize((max(1, round(w * f)), max(1, round(h * f))), Image.BILINEAR))
        boxes = self.detector(small, 0)
        if not boxes:
            return None
        b = max(boxes, key=lambda r: r.width() * r.height())
        box = self._rect(round(b.left() / f), round(b.top() / f), round(b.right() / f), round(b.bottom() / f))
        shape = self.predictor(rgb, box)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def transform(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(A, t): crop = A @ image + t; rotation and scale from the rigid points, the 68-point
        centroid at the crop centre (OpenFace centres on its shape model's origin)."""
        a = similarity(pts[RIGID], self.template[RIGID])
        t = self.size / 2 - a @ pts.mean(0)
        return a, t

    def align(self, rgb: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """uint8 [size, size, 3]: the frame warped by ``transform`` (bilinear), masked outside the face."""
        a, t = self.transform(pts)
        inv = np.linalg.inv(a)
        # PIL maps each output point to the input by (a x + b y + c, d x + e y + f) with pixel centres at
        # i + 0.5; dlib's landmarks (and OpenCV's warpAffine) put them at i: shift by half a pixel
        off = 0.5 - inv @ (t + 0.5)
        coeffs = (inv[0, 0], inv[0, 1], off[0], inv[1, 0], inv[1, 1], off[1])
        crop = Image.fromarray(rgb).transform((self.size, self.size), Image.AFFINE, coeffs, Image.BILINEAR)
        out = np.asarray(crop).copy()
        if self.mask:
            moved = pts @ a.T + t
            moved[RAISED, 1] -= RAISE_PX * self.size
            keep = Image.new("L", (self.size, self.size), 0)
            ImageDraw.Draw(keep).polygon([tuple(p) for p in _hull(moved)], fill=1)
            out *= np.asarray(keep, dtype=np.uint8)[..., None]
        return out

    def crop(self, rgb: np.ndarray) -> np.ndarray | None:
        pts = self.landmarks(rgb)
        return None if pts is None else self.align(rgb, pts)


# ----------------------------------------------------------------------------- video
def iter_frames(path: Path, fps: float | None = None):
    """RGB frames of the first video stream, upright (rotation metadata applied): every frame, or
    with ``fps`` the first frame at or after each multiple of 1/fps seconds."""
    _check_file(path)
    with _open(path) as c:
        if not c.streams.video:
            raise MediaError(path, "no video stream")
        vs = c.streams.video[0]
        vs.codec_context.thread_count = 1  # one core per clip; workers= scales out
        next_t = None
        for frame in c.decode(vs):
            if fps:
                t = float(frame.time) if frame.time is not None else 0.0
                if next_t is not None and t + 1e-6 < next_t:
                    continue
                next_t = (np.floor(t * fps + 1e-6) + 1) / fps
            arr = frame.to_ndarray(format="rgb24")
            rot = int(round(frame.rotation or 0)) % 360
            yield np.ascontiguousarray(np.rot90(arr, k=rot // 90)) if rot else arr


def crop_video(cropper: FaceCropper, path: Path, fps: float | None = None) -> tuple[np.ndarray | None, int]:
    """(crops uint8 [T, S, S, 3] RGB of the frames with a face, or None; number of frames read)."""
    crops, n = [], 0
    for rgb in iter_frames(Path(path), fps):
        n += 1
        face = cropper.crop(rgb)
        if face is not None:
            crops.append(face)
    if n == 0:
        raise MediaError(path, "video stream has no decodable frames")
    return (np.stack(crops) if crops else None), n


def face_output(root: Path, name: str) -> Path:
    """``ROOT/openface_face/NAME/NAME.npy``: the MER2025 release's layout, found by ``media.face_file``."""
    return Path(root) / FACE_DIR / name / f"{name}.npy"


def valid_faces(path: Path, size: int) -> bool:
    """A finished crop file: uint8 [T>0, size, size, 3] (memory-mapped, so checking costs no decode)."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    return arr.dtype == np.uint8 and arr.ndim == 4 and arr.shape[0] > 0 and arr.shape[1:] == (size, size, 3)


def save_faces(path: Path, crops_rgb: np.ndarray) -> None:
    """Write the crops as the MER releases store them: BGR, whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        np.save(f, np.ascontiguousarray(crops_rgb[..., ::-1]), allow_pickle=False)


@dataclass(frozen=True)
class Clip:
    name: str
    video: Path


def list_clips(source: str | Path) -> list[Clip]:
    """The clips of ``input=``: one video file, every video in a folder (not recursive), or the
    samples of a manifest (``.jsonl``/``.json``) that have a video. Names must be unique."""
    src = Path(source)
    if src.is_dir():
        clips = [Clip(p.stem, p) for p in sorted(src.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES]
        if not clips:
            raise ValueError(f"{src}: no video files ({', '.join(VIDEO_SUFFIXES)}) in this folder")
    elif src.suffix.lower() in (".jsonl", ".json"):
        clips = [Clip(s.name, Path(s.video)) for s in read_manifest(src) if s.video]
        if not clips:
            raise ValueError(f"{src}: no sample of this manifest has a video")
    elif src.is_file():
        clips = [Clip(src.stem, src)]
    else:
        raise ValueError(f"{src}: not found (expected a video file, a folder of videos or a manifest)")
    seen: dict[str, Path] = {}
    for c in clips:
        if c.name in seen:
            raise ValueError(f"{src}: two clips are named {c.name!r} ({seen[c.name]} and {c.video}); "
                             "face files are named after the clip")
        seen[c.name] = c.video
    return clips


_WORKER: dict = {}


def _init_worker(size: int, mask: bool, detect_size: int) -> None:
    _WORKER["cropper"] = FaceCropper(size, mask, detect_size)


def _process(clip: Clip, root: str, fps: float | None) -> dict:
    """One clip → its .npy; a row for the report: status ok | no_face | error."""
    t0 = time.perf_counter()
    row = {"name": clip.name, "video": str(clip.video)}
    try:
        crops, n = crop_video(_WORKER["cropper"], clip.video, fps)
    except MediaError as e:
        return {**row, "status": "error", "error": str(e), "seconds": round(time.perf_counter() - t0, 3)}
    row.update(frames=n, faces=0 if crops is None else len(crops))
    if crops is None:
        row["status"] = "no_face"
    else:
        save_faces(face_output(Path(root), clip.name), crops)
        row["status"] = "ok"
    return {**row, "seconds": round(time.perf_counter() - t0, 3)}


def run(clips: list[Clip], root: Path, workers: int = 1, fps: float | None = None, size: int = FACE_SIZE,
        mask: bool = True, detect_size: int = 480, progress: bool = True) -> dict:
    """Crop every clip whose face file is missing or invalid; append one row per processed clip to
    ``root/faces_report.jsonl``. Returns counts and the names without a face or with an error."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    todo = [c for c in clips if not valid_faces(face_output(root, c.name), size)]
    counts = {"clips": len(clips), "skipped": len(clips) - len(todo), "written": 0, "no_face": [], "errors": [],
              "frames": 0, "seconds": 0.0}
    model_dir()  # fail before starting workers when the weights are missing
    t0 = time.perf_counter()
    bar = tqdm(total=len(clips), initial=counts["skipped"], disable=not progress, desc="faces", unit="clip",
               dynamic_ncols=True)
    with open(root / "faces_report.jsonl", "a", encoding="utf-8") as report:
        def record(row: dict) -> None:
            report.write(json.dumps(row, ensure_ascii=False) + "\n")
            report.flush()
            counts["frames"] += row.get("frames", 0)
            if row["status"] == "ok":
                counts["written"] += 1
            else:
                counts["no_face" if row["status"] == "no_face" else "errors"].append(row["name"])
            bar.update(1)

        if workers <= 1 or len(todo) <= 1:
            _init_worker(size, mask, detect_size)
            for clip in todo:
                record(_process(clip, str(root), fps))
        else:
            # forkserver: workers start clean (no copied threads or dlib state) and build their own models
            with ProcessPoolExecutor(workers, mp_context=get_context("forkserver"), initializer=_init_worker,
                                     initargs=(size, mask, detect_size)) as pool:
                for row in pool.map(_process, todo, [str(root)] * len(todo), [fps] * len(todo)):
                    record(row)
    bar.close()
    counts["seconds"] = time.perf_counter() - t0
    return counts


def summary(counts: dict, root: Path) -> str:
    s = counts["seconds"]
    lines = [f"faces: {counts['clips']} clips: {counts['written']} written, {counts['skipped']} already done, "
             f"{len(counts['no_face'])} without a face, {len(counts['errors'])} errors; "
             f"{counts['frames']} frames in {s:.1f} s ({counts['frames'] / s if s > 0 else 0:.1f} frames/s, "
             f"{(counts['written'] + len(counts['no_face'])) / s if s > 0 else 0:.2f} clips/s)"]
    if counts["no_face"]:
        lines.append("no face found in: " + ", ".join(counts["no_face"]))
    if counts["errors"]:
        lines.append("errors (see the report): " + ", ".join(counts["errors"]))
    lines.append(f"report -> {Path(root) / 'faces_report.jsonl'}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- on the fly (inference)
@lru_cache(maxsize=1)
def shared_cropper() -> FaceCropper:
    """One cropper per process (models load in about a second)."""
    return FaceCropper()


def crop_clip(video: str | Path, n_frames: int = 8) -> np.ndarray:
    """uint8 [n_frames, 112, 112, 3] BGR (as a face file stores them) from the clip's ``n_frames``
    sampled frames (``media.load_media``'s segment centres); frames without a face are left out and
    the others sampled as ``load_faces`` samples a file. No face in any frame raises ``MediaError``."""
    frames = load_media(Path(video), None, n_frames=n_frames, max_audio_seconds=1.0).frames
    if frames is None:
        raise MediaError(video, "visual=faces: the file has no video stream to crop faces from")
    cropper = shared_cropper()
    crops = [c for c in (cropper.crop(f) for f in frames) if c is not None]
    if not crops:
        raise MediaError(video, f"visual=faces: no face found in any of the {n_frames} sampled frames "
                                "(cropping on the fly, no face file)")
    idx = np.floor(np.arange(n_frames) * len(crops) / n_frames).astype(int)
    return np.ascontiguousarray(np.stack(crops)[idx][..., ::-1])


def without_face_file(samples) -> list[str]:
    """Names of samples whose face file is missing: their faces are cropped on the fly."""
    return [s.name for s in samples
            if not ((p := face_file(s.name, s.video, s.extra.get("faces"))) and p.is_file())]


def on_the_fly_note(missing: list[str], total: int) -> str:
    return (f"visual=faces: {len(missing)} of {total} clips have no face file (openface_face/NAME/NAME.npy next "
            f"to the video folder, or 'faces' in the manifest): cropping their faces on the fly with dlib "
            f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); "
            "python -m affectgpt.apps.faces makes the files once")


if __name__ == "__main__":  # the command line moved to affectgpt/apps; say so instead of exiting 0 silently
    import sys

    from affectgpt.core.errors import moved_command

    sys.exit(moved_command("affectgpt.data.faces"))
