"""paper_tables: the plan of the full-scale runs, lanes side by side, the budget, the records."""
import json
import os
import tarfile

import pytest

from covseg_jax import paper_tables, sweep
from tests import helpers

# Every family and config RESULTS.md tables at full scale.
TABLED = {"segnet_binary", "unet_binary", "segnet_multi", "unet_multi", "lung_resnet",
          "lung_unet", "lung_resnet_improved", "segnet_binary_improved", "segnet_multi_improved"}
# Overrides that apply to every config, shrinking :cpu runs to seconds.
TINY = ("--config.data.image_size=32", "--config.train.epochs=1",
        "--config.train.val_every_steps=5", "--config.train.log_every_steps=5",
        "--config.eval.batch_size=8")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return helpers.data_dir_or_phantoms(tmp_path_factory)


def planned_workdirs(root):
  """{workdir relative to root} of every run the lanes would start."""
  workdirs = set()
  for lane in paper_tables.LANES.values():
    for s in lane:
      runs = sweep.plan_runs(f"configs/{s.config}.py", os.path.join(root, s.root),
                             sweep.parse_experiments(s.experiments), s.folds, list(s.overrides),
                             s.fold_split)
      workdirs.update(os.path.relpath(run.workdir, root) for run in runs)
  return workdirs


def test_the_lanes_cover_every_tabled_config_with_its_nine_experiments_and_folds(in_repo):
  assert {s.config for lane in paper_tables.LANES.values() for s in lane} == TABLED
  workdirs = planned_workdirs("r")
  for family, best in (("segnet_binary", 4), ("unet_binary", 4), ("segnet_multi", 7),
                       ("unet_multi", 4)):
    assert {f"{family}/exp{e}" for e in range(1, 10)} <= workdirs
    assert {f"{family}_cv/exp{best}/fold{k}" for k in range(5)} <= workdirs
    assert {f"{family}_seed1", f"{family}_seed2"} <= workdirs
    # The run of the paper's class-level table comes first in its lane.
    assert paper_tables.LANES[family][0] == paper_tables.Sweep(family, family, str(best))
  # Every ensemble's members are runs of the plan, which has 88 runs in all.
  for members in paper_tables.ENSEMBLES.values():
    assert set(members) <= workdirs
  assert len(workdirs) == 4 * 16 + 7 + 17


def test_dry_run_prints_the_sweeps(in_repo, capsys):
  assert paper_tables.main(["--root=r", "--out=o", "--lanes=lung", "--variant=cpu",
                            "--config.train.epochs=2", "--dry_run"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == ("[lung] python -m covseg_jax.sweep --config=configs/lung_resnet.py:cpu "
                      "--root=r/lung_resnet --experiments=none --config.train.epochs=2")
  assert lines[-1].endswith("--root=r/lung_resnet_improved_seed2 --experiments=none "
                            "--config.seed=2 --config.train.epochs=2")
  assert "--root=r/lung_unet --experiments=none" in lines[1]
  assert len(lines) == 7 and not os.path.exists("o")


@pytest.mark.parametrize("argv", [["--lanes=lung,bogus"], ["--budget_s=0"], ["--epochs=2"]])
def test_bad_arguments_exit_with_usage(in_repo, argv, capsys):
  with pytest.raises(SystemExit) as exit_info:
    paper_tables.main(["--root=r", "--out=o"] + argv)
  assert exit_info.value.code == 2
  assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--variant=gpu"], "unknown config variant 'gpu'"),
    (["--config.train.epoch=3"], "the config has no field 'epoch'")])
def test_a_bad_variant_or_override_stops_before_anything_runs(in_repo, tmp_path, argv, message,
                                                             capsys):
  assert paper_tables.main([f"--root={tmp_path / 'r'}", f"--out={tmp_path / 'o'}"] + argv) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and message in err and err.count("\n") == 1
  assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_a_lane_runs_its_ensemble_tables_and_records_and_is_skipped_once_restored(
    in_repo, data_dir, tmp_path, capsys):
  root, out = tmp_path / "root", tmp_path / "out"
  argv = [f"--root={root}", f"--out={out}", "--lanes=lung", "--variant=cpu", "--budget_s=3600",
          f"--config.data.data_dir={data_dir}", *TINY]
  assert paper_tables.main(argv) == 0
  text = capsys.readouterr().out
  assert "[lung] [1/1] .: done in" in text and "budget is spent" not in text
  runs = sorted(["lung_resnet"] + [f"{name}{suffix}" for name in ("lung_unet", "lung_resnet_improved")
                                    for suffix in ("", "_seed1", "_seed2", "_ensemble")])
  assert [os.path.relpath(r, root) for r in paper_tables.finished_runs(str(root))] == runs
  for name in ("lung_unet_ensemble", "lung_resnet_improved_ensemble"):
    ensemble = json.loads((root / name / "ensemble.json").read_text())
    assert len(ensemble["members"]) == 3
    assert name in (out / "results" / "results.md").read_text()

  with tarfile.open(out / "runs.tar.gz") as tar:
    names = tar.getnames()
  for run in runs:
    assert f"{run}/config.json" in names and f"{run}/test_metrics.json" in names
    assert f"{run}/report/test_report.md" in names
  assert not [n for n in names if set(n.split("/")) & set(paper_tables.NOT_PACKED)]

  # The records alone, unpacked on another machine, let the same command skip every run.
  restored = tmp_path / "restored"
  restored.mkdir()
  with tarfile.open(out / "runs.tar.gz") as tar:
    tar.extractall(restored, filter="data")
  assert paper_tables.main([f"--root={restored}", f"--out={tmp_path / 'out2'}"] + argv[2:]) == 0
  text = capsys.readouterr().out
  assert text.count("finished earlier, skipped") == 7 and "running in" not in text
  assert "9 finished run(s)" in text


@pytest.mark.slow
def test_the_budget_stops_the_lanes_and_keeps_only_finished_records(in_repo, data_dir, tmp_path,
                                                                   capsys):
  root, out = tmp_path / "root", tmp_path / "out"
  assert paper_tables.main([f"--root={root}", f"--out={out}", "--lanes=segnet_binary,unet_binary",
                            "--variant=cpu", "--budget_s=30", f"--config.data.data_dir={data_dir}",
                            *TINY]) == 0
  text = capsys.readouterr().out
  assert "the 30 s budget is spent" in text and "FAILED" not in text
  # Every run that started has finished or was stopped cleanly: none crashed.
  logs = list(root.glob("**/train.log"))
  assert logs and not [log for log in logs if "Traceback" in log.read_text()]
  finished = paper_tables.finished_runs(str(root))
  if finished:  # A fast machine finishes the first runs within the budget.
    with tarfile.open(out / "runs.tar.gz") as tar:
      packed = {os.path.dirname(n) for n in tar.getnames() if n.endswith("/config.json")}
    assert packed == {os.path.relpath(r, root) for r in finished}
