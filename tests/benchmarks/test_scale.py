"""benchmarks/scale.py checks where its report goes before it starts (issue 28: with --output inside --workdir
it deleted the folder, then crashed after 17 minutes and lost the report)."""

import pytest

from benchmarks.scale import main


@pytest.mark.parametrize("where", ["inside", "folder"])
def test_the_output_path_is_checked_before_any_work(tmp_path, capsys, where):
    workdir = tmp_path / "work"
    output = workdir / "SCALE.md" if where == "inside" else tmp_path
    with pytest.raises(SystemExit) as stopped:
        main(["--sizes", "1000", "--repeats", "1", "--workdir", str(workdir), "--output", str(output)])
    assert stopped.value.code == 2
    assert ("lies inside --workdir" if where == "inside" else "cannot be written") in capsys.readouterr().err
    assert not workdir.exists()  # nothing was started
