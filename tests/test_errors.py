import subprocess
import sys

from helpers.project import ROOT


def test_bad_input_ends_a_stage_with_one_line_naming_it(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: 1\nclasses: [{slug: a, keyword: A}, {slug: b, keyword: B}]\ntrain: {lr: fast}\n")
    result = subprocess.run(
        [sys.executable, "-m", "stages.split"], cwd=tmp_path, capture_output=True, text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert result.stderr == "error: train.lr must be float, got 'fast'\n"
