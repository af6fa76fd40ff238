"""Face crops (affectgpt.data.faces): real photographs give crops that contain the face, the alignment
undoes a head roll, a clip becomes ``openface_face/NAME/NAME.npy`` in BGR, a clip without a face is a
counted row, and the files train and infer with ``data.visual=faces`` (also cropped on the fly)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dlib")
skdata = pytest.importorskip("skimage.data")

from PIL import Image  # noqa: E402

from affectgpt.apps import faces as faces_app  # noqa: E402
from affectgpt.data import faces as F  # noqa: E402
from affectgpt.data.synthetic import write_clip  # noqa: E402
from helpers import data_root, run_in_process  # noqa: E402

# Face boxes (left, top, right, bottom): hairline or hat brim to chin, cheek to cheek, checked by eye on
# the photographs with the box drawn over them.
PHOTOS = {"astronaut": (181, 82, 276, 178), "grace_hopper": (180, 147, 352, 332)}


def photo(name: str) -> np.ndarray:
    if name == "astronaut":
        return skdata.astronaut()
    import matplotlib.cbook

    return np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))


@pytest.fixture(scope="module")
def cropper():
    return F.shared_cropper()


def footprint(cropper, pts) -> tuple[float, float, float, float]:
    """The crop's square mapped back into the photograph: its axis-aligned box."""
    a, t = cropper.transform(pts)
    s = cropper.size
    corners = (np.array([[0, 0], [s, 0], [0, s], [s, s]]) - 0.5 - t) @ np.linalg.inv(a).T
    return (*corners.min(0), *corners.max(0))


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return w * h / (area - w * h)


@pytest.mark.parametrize("name", list(PHOTOS))
def test_crop_of_a_photograph_contains_the_face(cropper, name):
    img = photo(name)
    pts = cropper.landmarks(img)
    assert pts is not None and pts.shape == (68, 2)
    assert iou(footprint(cropper, pts), PHOTOS[name]) >= 0.7
    crop = cropper.align(img, pts)
    assert crop.dtype == np.uint8 and crop.shape == (112, 112, 3)
    assert (crop[0, 0] == 0).all() and crop[56, 56].any()  # masked corner, face at the centre, as OpenFace


def test_alignment_undoes_a_head_roll(cropper):
    """The astronaut turned by 20 degrees about her face: the fitted rotation turns her back by 20 degrees
    and the crop is the upright one's up to resampling."""
    img = skdata.astronaut()
    upright = cropper.crop(img)
    turned = np.asarray(Image.fromarray(img).rotate(20, resample=Image.BILINEAR, center=(228, 130)))
    pts = cropper.landmarks(turned)
    a, _ = cropper.transform(pts)
    a0, _ = cropper.transform(cropper.landmarks(img))
    angle = np.degrees(np.arctan2(a[1, 0], a[0, 0]) - np.arctan2(a0[1, 0], a0[0, 0]))
    # PIL turns counter-clockwise on screen, -20 degrees in y-down pixel coordinates; the crop turns +20 back
    assert abs(angle - 20) < 3, angle
    diff = np.abs(cropper.align(turned, pts).astype(float) - upright.astype(float))[24:96, 24:96].mean()
    assert diff < 12, diff


def test_mean_shape_is_read_from_the_model_file():
    shape = F.mean_shape(str(F.model_dir() / "shape_predictor_68_face_landmarks.dat"))
    assert shape.shape == (68, 2)
    np.testing.assert_allclose(shape[:17, 0] + shape[16::-1, 0], 1.0, atol=0.01)  # the jaw is mirror-symmetric
    assert abs(shape[8, 0] - 0.5) < 0.01 and shape[8, 1] > shape[57, 1] > shape[33, 1] > shape[27, 1]  # chin low
    assert abs((shape[0, 0] + shape[16, 0]) / 2 - 0.5) < 0.01  # jaw ends symmetric about the middle


# ----------------------------------------------------------------------------- clips
def astronaut_clip(path: Path, n: int = 6, size: int = 160) -> Path:
    """The astronaut photograph moving and zooming over ``n`` frames, encoded as a real H.264 mp4."""
    img = Image.fromarray(skdata.astronaut())
    frames = []
    for i in range(n):
        cx, cy, side = 228 + 4 * i, 150 + 2 * i, 260 - 12 * i
        box = (cx - side // 2, cy - side // 2, cx + side // 2, cy + side // 2)
        frames.append(np.asarray(img.crop(box).resize((size, size), Image.BILINEAR)))
    return write_clip(path, np.stack(frames), None, fps=5, sample_rate=16000)


def faceless_clip(path: Path, n: int = 4, size: int = 160) -> Path:
    img = Image.fromarray(skdata.coffee()).resize((size, size), Image.BILINEAR)
    return write_clip(path, np.stack([np.asarray(img)] * n), None, fps=5, sample_rate=16000)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("faceclips")
    video = root / "video"
    for i in range(3):
        astronaut_clip(video / f"astro{i}.mp4", n=6 - i)
    faceless_clip(video / "coffee.mp4")
    return root


def test_folder_of_clips_gives_bgr_face_files_and_a_counted_faceless_row(clips, tmp_path, capsys):
    out = tmp_path / "root"
    assert faces_app.main([f"input={clips / 'video'}", f"output={out}"]) == 0
    err = capsys.readouterr().err
    assert "faces: 4 clips: 3 written, 0 already done, 1 without a face, 0 errors" in err
    assert "no face found in: coffee" in err
    report = [json.loads(ln) for ln in (out / "faces_report.jsonl").read_text().splitlines()]
    assert {r["name"]: r["status"] for r in report} == {"astro0": "ok", "astro1": "ok", "astro2": "ok",
                                                         "coffee": "no_face"}
    assert not (out / "openface_face" / "coffee").exists()
    faces = np.load(out / "openface_face" / "astro0" / "astro0.npy")
    assert faces.dtype == np.uint8 and faces.shape == (6, 112, 112, 3)  # one crop per frame, as OpenFace
    first = next(F.iter_frames(clips / "video" / "astro0.mp4"))
    np.testing.assert_array_equal(faces[0], F.shared_cropper().crop(first)[..., ::-1])  # stored BGR
    # resumable: a second run skips the finished clips and leaves their files alone
    stamp = (out / "openface_face" / "astro0" / "astro0.npy").stat().st_mtime_ns
    assert faces_app.main([f"input={clips / 'video'}", f"output={out}", "workers=2"]) == 0
    assert "3 already done, 1 without a face" in capsys.readouterr().err
    assert (out / "openface_face" / "astro0" / "astro0.npy").stat().st_mtime_ns == stamp


def test_on_the_fly_crops_and_a_faceless_clip_is_an_error(clips):
    from affectgpt.data.media import MediaError

    crops = F.crop_clip(clips / "video" / "astro1.mp4", 8)
    assert crops.shape == (8, 112, 112, 3) and crops.dtype == np.uint8
    with pytest.raises(MediaError, match="coffee.mp4: visual=faces: no face found in any of the 8 sampled frames"):
        F.crop_clip(clips / "video" / "coffee.mp4", 8)


def test_bad_input_is_one_line(tmp_path, capsys):
    assert faces_app.main([f"input={tmp_path / 'none.mp4'}", f"output={tmp_path}"]) == 2
    assert "none.mp4: not found (expected a video file, a folder of videos or a manifest)" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert faces_app.main([f"input={tmp_path / 'empty'}", f"output={tmp_path}"]) == 2
    assert "empty: no video files" in capsys.readouterr().err


# ----------------------------------------------------------------------------- train and infer on the crops
def run_py(*args):
    """``python ARGS`` in this process (``run_in_process``): what is checked is the commands' answer on face
    files, not their processes."""
    return run_in_process(list(args))


@pytest.mark.integration
def test_face_files_train_and_infer(clips, tmp_path, tmp_path_factory, capsys):
    """Crops made by the tool → 2 steps of train.py with data.visual=faces → infer.py on a manifest with one
    clip that has its face file and one elsewhere that has none (cropped on the fly, said on stderr)."""
    root = tmp_path / "data"
    shutil.copytree(clips / "video", root / "video")
    rows = [{"name": f"astro{i}", "video": f"video/astro{i}.mp4", "subtitle": "I passed the test.",
             "description": "She smiles broadly.", "emotions": ["happy"]} for i in range(3)]
    for split, part in (("train", rows), ("val", rows[:1])):
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    assert faces_app.main([f"input={root / 'train.jsonl'}", f"output={root}"]) == 0
    assert "3 written" in capsys.readouterr().err
    raw = tmp_path / "elsewhere" / "clip.mp4"
    raw.parent.mkdir()
    shutil.copy(clips / "video" / "astro0.mp4", raw)
    (root / "test.jsonl").write_text(json.dumps(rows[1]) + "\n" + json.dumps({**rows[2], "name": "clip",
                                                                               "video": str(raw)}) + "\n")
    assets = data_root(tmp_path_factory) / "tiny-pretrained-bpe"  # the session's tiny weights, built once
    out = tmp_path / "run"
    r = run_py("train.py", f"output_dir={out}", "data=manifest", f"data.root={root}", "data.visual=faces",
               f"model.tiny_assets={assets}", "trainer.max_steps=2", "trainer.batch_size=2", "trainer.warmup_steps=1",
               "trainer.standardize_samples=3", "trainer.num_workers=0", "eval.max_samples=1", "eval.max_new_tokens=2")
    assert r.returncode == 0, r.stderr[-3000:]
    pred = tmp_path / "pred.jsonl"
    r = run_py("infer.py", f"checkpoint={out / 'checkpoints' / 'final'}", f"manifest={root / 'test.jsonl'}",
               f"output={pred}", "max_new_tokens=2", "num_workers=0")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "visual=faces: 1 of 2 clips have no face file" in r.stderr and "cropping their faces on the fly with " \
        "dlib (clip)" in r.stderr, r.stderr[-2000:]
    got = [json.loads(ln) for ln in pred.read_text().splitlines()]
    assert [g["name"] for g in got] == ["astro1", "clip"] and not any(g.get("error") for g in got), got


@pytest.mark.integration
def test_demo_shows_the_face_crops_it_feeds(artifacts, clips):
    """demo.py with visual=faces: an upload is cropped on the fly, the page gets those crops (RGB), and an
    upload without a face is the page's one-line error."""
    from affectgpt.apps import demo
    from affectgpt.runtime.inference import load_model

    session = demo.Session(load_model(artifacts["checkpoint"], device="cpu"), 0, "cpu", "faces")
    gen = {"max_new_tokens": 2, "do_sample": False, "temperature": 1.0, "top_p": 1.0, "num_beams": 1}
    video = clips / "video" / "astro0.mp4"
    out = demo.run_request(session, str(video), None, "", "describe", gen)
    n = session.loaded.model.token_plan().frames
    assert len(out["frames"]) == n
    np.testing.assert_array_equal(np.stack(out["frames"]), F.crop_clip(video, n)[..., ::-1])
    with pytest.raises(demo.InputError, match="coffee.mp4: visual=faces: no face found"):
        demo.run_request(session, str(clips / "video" / "coffee.mp4"), None, "", "describe", gen)
