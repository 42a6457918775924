"""Sweep plans: spaces, CLI validation before Ray starts, dry runs, concurrency sizing."""

import itertools
import random

import pytest

from medflip.sweep import cluster, launch
from medflip.sweep.plan import Plan, PlanError, trial_points, validate
from medflip.sweep.spaces import SPACES, Choice, Space, get


def plan_for(name, *argv):
    space = get(name)
    return launch.make_plan(space, launch.build_parser(space).parse_args(list(argv)))


def test_every_space_is_valid_with_its_defaults(tmp_path):
    for name in SPACES:
        plan = plan_for(name, "--storage", str(tmp_path))
        assert plan.num_trials >= 1 and plan.variant == "demo"
        smoke = plan_for(name, "--storage", str(tmp_path), "--smoke-test")
        assert smoke.num_trials == 2 and smoke.variant == "tiny" and smoke.seeds == (0,)
        assert "optim.time_budget_s" not in smoke.fixed  # the demo budget is demo-only


def test_mask_ratio_grid_is_fig1_times_seeds(tmp_path):
    plan = plan_for("mask_ratio", "--storage", str(tmp_path), "--seeds", "3", "--set", "seed=5")
    points = trial_points(plan)
    assert plan.seeds == (5, 6, 7) and plan.num_trials == 15 == len(points)
    want = set(itertools.product((0.0, 0.25, 0.5, 0.75, 0.9), (5, 6, 7)))
    assert {(p["mask.image_ratio"], p["seed"]) for p in points} == want
    assert plan.fixed["mask.variant"] == "none"  # pure FLIP: the ratio is the only factor


def test_data_efficiency_grid_and_joint_search_sizes(tmp_path):
    grid = plan_for("data_efficiency", "--storage", str(tmp_path), "--seeds", "2")
    assert grid.num_trials == 4 * 2 * 2
    joint = plan_for("joint", "--storage", str(tmp_path), "--seeds", "2", "--num-samples", "5")
    assert joint.num_trials == 10 and joint.space.multi_objective


@pytest.mark.parametrize(
    "argv,fragment",
    [
        (["--set", "mask.image_ratoi=0.3"], "mask.image_ratio"),
        (["--set", "optim.lr=-1"], "optim.lr"),
        (["--set", "mask.image_ratio=0.3"], "searches this key"),
        (["--variant", "huge"], "variant: 'huge' is not one of"),
        (["--num-samples", "3"], "--num-samples"),
        (["--seeds", "0"], "--seeds"),
        (["--max-concurrent", "0"], "--max-concurrent"),
        (["--cpus-per-worker", "0"], "--cpus-per-worker"),
        (["--workers-per-trial", "0"], "--workers-per-trial"),
        (["--resume"], "--resume"),
        (["--smoke-test", "--variant", "demo"], "--smoke-test"),
    ],
)
def test_bad_flags_are_rejected_naming_them(tmp_path, argv, fragment):
    with pytest.raises(PlanError, match=fragment.replace("-", r"\-")):
        plan_for("mask_ratio", "--storage", str(tmp_path), *argv)


def test_a_trial_value_out_of_range_is_caught_before_ray(tmp_path):
    space = Space("bad", "test", "grid", {"mask.image_ratio": Choice((0.5, 0.99))})
    plan = Plan(space, "bad", str(tmp_path), "tiny", {}, dict(space.axes), (0,), 1)
    with pytest.raises(PlanError, match=r"mask\.image_ratio.*0\.99"):
        validate(plan)


def test_asha_is_refused_for_the_multi_objective_space_only(tmp_path):
    with pytest.raises(PlanError, match="objectives"):
        plan_for("joint", "--storage", str(tmp_path), "--scheduler", "asha")
    assert plan_for("temperature", "--storage", str(tmp_path), "--scheduler", "asha")


def test_existing_experiment_needs_resume(tmp_path):
    (tmp_path / "mask-ratio").mkdir()
    (tmp_path / "mask-ratio" / "tuner.pkl").write_bytes(b"x")
    with pytest.raises(PlanError, match="--resume"):
        plan_for("mask_ratio", "--storage", str(tmp_path))
    assert plan_for("mask_ratio", "--storage", str(tmp_path), "--resume").resume


def test_dry_run_prints_trials_without_starting_ray(tmp_path, capsys):
    import ray

    code = launch.main(
        "masking_variants", ["--storage", str(tmp_path), "--dry-run", "--seeds", "2"]
    )
    out = capsys.readouterr().out
    assert code == 0 and not ray.is_initialized()
    assert "8 trials" in out and "'mask.variant': 'both', 'mask.image_ratio': 0.5, 'seed': 1" in out
    assert not (tmp_path / "masking-variants").exists()
    assert launch.main("joint", ["--dry-run", "--scheduler", "asha"]) == 2


def test_joint_space_searches_patch_dropping_as_its_own_axis():
    import optuna

    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0)
    )
    seen = set()
    for _ in range(40):
        trial = study.ask()
        assert SPACES["joint"].define(trial) is None
        params = trial.params
        seen.add(params["mask.variant"])
        assert 0.0 <= params["mask.image_ratio"] <= 0.9  # for every variant (objectives)
        assert 0.01 <= params["loss.temperature"] <= 0.5
    assert seen == {"none", "image", "text", "both"}


def _brute_force_trials(nodes, res):
    """Place whole worker groups one worker at a time onto any node with room; count groups."""
    free = [dict(n) for n in nodes]
    groups = 0
    while True:
        trial = [dict(n) for n in free]
        for _ in range(res.num_workers):
            node = next(
                (
                    n
                    for n in trial
                    if n.get("CPU", 0) >= res.cpus_per_worker - 1e-9
                    and n.get("GPU", 0) >= res.gpus_per_worker - 1e-9
                ),
                None,
            )
            if node is None:
                return groups
            node["CPU"] -= res.cpus_per_worker
            node["GPU"] = node.get("GPU", 0) - res.gpus_per_worker
        free, groups = trial, groups + 1


def test_concurrency_matches_brute_force_placement():
    rng = random.Random(0)
    for _ in range(200):
        nodes = [
            {"CPU": float(rng.choice([2, 4, 16, 96])), "GPU": float(rng.choice([0, 0, 4, 8]))}
            for _ in range(rng.randint(1, 8))
        ]
        workers = rng.choice([1, 2, 4, 8])
        gpus = rng.choice([0.0, 1.0, 0.5]) if any(n["GPU"] for n in nodes) else 0.0
        res = cluster.Resources(workers, float(rng.choice([1, 2, 3])), gpus)
        want = _brute_force_trials(nodes, res)
        if want == 0:
            with pytest.raises(ValueError, match="--workers-per-trial"):
                cluster.trial_concurrency(nodes, res, None)
        else:
            assert cluster.trial_concurrency(nodes, res, None) == want


def test_default_resources_two_cores_and_64_gpus():
    laptop = [{"CPU": 2.0}]
    res = cluster.default_resources(laptop, 1, None, None)
    assert res == cluster.Resources(1, 2.0, 0.0)  # one worker gets both cores
    assert cluster.trial_concurrency(laptop, res, None) == 1
    pod = [{"CPU": 96.0, "GPU": 8.0}] * 8
    res = cluster.default_resources(pod, 4, None, None)
    assert res == cluster.Resources(4, 12.0, 1.0)
    assert cluster.trial_concurrency(pod, res, None) == 16
    assert cluster.trial_concurrency(pod, res, 5) == 5


def test_head_memory_caps_concurrent_train_runs_and_says_so(tmp_path):
    gib = 2.0**30
    head = {"CPU": 8.0, "memory": 4 * gib, "node:__internal_head__": 1.0}  # 4,096 MB
    pod = [head] + [{"CPU": 96.0, "GPU": 8.0, "memory": 500 * gib}] * 8
    p = plan_for("temperature", "--storage", str(tmp_path), "--workers-per-trial", "4")
    res, conc = launch.resolve_resources(p, pod)
    assert conc == 6  # 4,096 // 600 runs fit the head; the GPUs alone would allow 16
    text = launch.describe(p, res, conc, pod)
    assert "6 trial(s) at once; head memory 4,096 MB holds 6 concurrent Train run(s)" in text
    loose = plan_for(
        "temperature",
        "--storage",
        str(tmp_path),
        "--workers-per-trial",
        "4",
        "--head-memory-per-run-mb",
        "0",
    )
    assert launch.resolve_resources(loose, pod)[1] == 16  # 0: no head limit
    small = plan_for(
        "temperature",
        "--storage",
        str(tmp_path),
        "--workers-per-trial",
        "4",
        "--head-memory-per-run-mb",
        "200",
    )
    assert launch.resolve_resources(small, pod)[1] == 16  # 20 fit the head: the GPUs cap it
    with pytest.raises(PlanError, match="--head-memory-per-run-mb"):
        plan_for("temperature", "--storage", str(tmp_path), "--head-memory-per-run-mb", "-1")
