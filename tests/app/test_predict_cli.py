"""`capsnet-predict`: the service's preprocessing and model on local files, no server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from app.predict_cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_shipped_model_reads_each_example_as_its_digit(trained_weights, capsys):
    images = [EXAMPLES / name for name in ("mnist-7.png", "paper-3.jpg", "canvas-4.png")]
    main([*map(str, images), "--weights", str(trained_weights), "--json"])
    predictions = json.loads(capsys.readouterr().out)["predictions"]
    assert [p["digit"] for p in predictions] == [7, 3, 4]
    assert all(len(p["scores"]) == 10 and len(p["top_k"]) == 3 for p in predictions)


def test_a_bad_file_is_named_the_others_still_run_and_the_exit_status_is_1(small_weights, tmp_path, capsys):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                str(EXAMPLES / "mnist-7.png"),
                str(text),
                str(tmp_path / "missing.png"),
                "--weights",
                str(small_weights),
            ]
        )
    assert exit_.value.code == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith(str(EXAMPLES / "mnist-7.png")) and "error" not in lines[1]
    assert lines[2].startswith(str(text)) and "not an image" in lines[2]
    assert lines[3].startswith(str(tmp_path / "missing.png")) and "No such file" in lines[3]


def test_saved_pngs_are_the_input_reconstruction_and_tweak_grid_at_the_asked_scale(
    small_weights, tmp_path, capsys
):
    out = tmp_path / "pngs"
    main(
        [
            str(EXAMPLES / "canvas-4.png"),
            "--weights",
            str(small_weights),
            "--save-pngs",
            str(out),
            "--scale",
            "2",
        ]
    )
    sizes = {path.name: Image.open(path).size for path in out.iterdir()}
    assert sizes == {
        "canvas-4-input.png": (56, 56),
        "canvas-4-reconstruction.png": (56, 56),
        "canvas-4-tweak.png": (11 * 56, 16 * 56),  # 11 steps across, one row per pose dimension
    }
    assert f"wrote {out / 'canvas-4-tweak.png'}" in capsys.readouterr().out


def test_weights_that_cannot_load_end_with_one_line_naming_them(tmp_path):
    with pytest.raises(SystemExit, match="capsnet-predict: .*not found"):
        main([str(EXAMPLES / "mnist-7.png"), "--weights", str(tmp_path / "none.safetensors")])
