"""Training runs on the tiny preset: loss goes down, resume is exact, export loads (CPU)."""

from __future__ import annotations

import dataclasses
import warnings

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from apcodec_cli.models import weights
from apcodec_cli.train.checkpoint import STATE_NAME, apply_weight_norm, initialise, \
    load_state, remove_weight_norm
from apcodec_cli.train.cli import train
from apcodec_cli.train.config import get_train_preset
from apcodec_cli.train.crops import PEAK, CropPlanner, ResidentCrops, StreamCrops
from apcodec_cli.train.data import Clip, find_clips
from apcodec_cli.train.distributed import Process
from apcodec_cli.train.loop import RunOptions, run
from apcodec_cli.train.trainer import Trainer
from apcodec_cli.nn.model import APCodec

from helpers import invoke

TINY = get_train_preset("tiny")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five loud 48 kHz mono clips of 0.5 s and one silent clip."""
    root = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    t = np.arange(24_000) / 48_000
    for i in range(5):
        x = 0.5 * np.sin(2 * np.pi * (200 + 100 * i) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(root / f"clip{i}.flac", x.astype(np.float32), 48_000, subtype="PCM_16")
    sf.write(root / "silence.flac", np.zeros(24_000, np.float32), 48_000, subtype="PCM_16")
    return root


def _sources(data_dir: Path, batch: int = 4, step_seed: int = 0):
    clips = [c for c in find_clips(data_dir) if c.split == "train"]
    planner = CropPlanner([c.frames for c in clips], 1600, batch, (-20.0, 0.0), step_seed)
    return (ResidentCrops(clips, planner, -60.0, torch.device("cpu")),
            StreamCrops(clips, planner, -60.0, workers=0))


def test_crops_are_deterministic_loud_and_the_same_from_memory_or_disk(data_dir: Path) -> None:
    resident, stream = _sources(data_dir, batch=8)
    a, b = resident.batch(3), stream[3]
    assert a.shape == (8, 1, 1600)
    assert torch.equal(a, b) and torch.equal(a, resident.batch(3))
    assert not torch.equal(a, resident.batch(4))
    assert a.abs().amax() <= PEAK + 1e-6
    rms_db = 20 * torch.log10(a.square().mean(-1).sqrt())
    assert torch.all(rms_db > -60)  # the silent clip is always skipped here


def test_tiny_training_lowers_the_loss_on_a_fixed_batch() -> None:
    # Without codebook re-seeding, whose step-0 initialisation moves the codebooks.
    trainer = Trainer(dataclasses.replace(TINY, revive_every=0), Process(0, 1, torch.device("cpu")))
    g = torch.Generator().manual_seed(0)
    t = torch.arange(TINY.segment) / 48_000
    wav = 0.3 * torch.sin(2 * math.pi * 440 * t) + 0.05 * torch.randn(2, 1, TINY.segment,
                                                                       generator=g)
    totals = [trainer.step(wav).generator.total.item() for _ in range(6)]
    assert totals[-1] < 0.95 * totals[0]
    assert all(b < a for a, b in zip(totals, totals[1:]))


def test_the_neurogram_and_hop_line_terms_join_the_total_when_weighted() -> None:
    g = torch.Generator().manual_seed(6)
    wav = 0.1 * torch.randn(2, 1, 4160, generator=g)
    totals = {}
    for weight in ("0", "1"):
        config = TINY.override({"segment": "4160", "revive_every": "0",
                                "loss.neurogram": weight, "loss.hop_lines": weight,
                                "loss.band_levels": weight})
        trainer = Trainer(config, Process(0, 1, torch.device("cpu")))
        losses = trainer.step(wav).generator
        totals[weight] = (losses.total.item(), losses.neurogram.item(),
                          losses.hop_lines.item(), losses.band_levels.item())
    assert totals["0"][1:] == (0.0, 0.0, 0.0)
    total, *terms = totals["1"]
    assert min(terms) > 0
    assert total == pytest.approx(totals["0"][0] + sum(terms), rel=1e-4)
    # Either neurogram term alone: the other is neither added nor logged.
    config = TINY.override({"segment": "4160", "revive_every": "0", "loss.band_levels": "1"})
    losses = Trainer(config, Process(0, 1, torch.device("cpu"))).step(wav).generator
    assert losses.band_levels.item() > 0 and losses.neurogram.item() == 0


def test_the_cpu_trunk_preset_trains_the_kept_recipe() -> None:
    """The recipe docs/training.md keeps: the cpu preset's codec and samples per step (in
    crops twice as long), lr 5e-4, no GAN, the phase losses weighted by amplitude, the
    long-window (up to 8 192 samples), neurogram, phase-lock and frame-rate line terms on."""
    cpu, trunk = get_train_preset("cpu"), get_train_preset("cpu-trunk")
    changed = {k for k, v in trunk.to_dict().items() if v != cpu.to_dict()[k]}
    assert changed == {"name", "lr", "gan_start", "loss", "segment", "batch_size"}
    assert trunk.segment * trunk.batch_size == cpu.segment * cpu.batch_size
    assert trunk.segment > max(trunk.loss.long_stft_windows) == 8192
    assert trunk.gan_start > trunk.steps and trunk.lr == 5e-4
    config = trunk.override({"batch_size": "2", "revive_every": "0"})
    trainer = Trainer(config, Process(0, 1, torch.device("cpu")))
    wav = 0.1 * torch.randn(2, 1, config.segment, generator=torch.Generator().manual_seed(3))
    losses = trainer.step(wav).generator
    assert losses.long_stft.item() > 0 and losses.neurogram.item() > 0
    assert trunk.loss.coherence == 100 and math.isfinite(losses.coherence.item())
    assert trunk.loss.hop_lines == 2000 and losses.hop_lines.item() > 0
    assert losses.adversarial.item() == 0 and losses.feature.item() == 0


def test_the_discriminators_schedule_advances_quietly_before_the_gan() -> None:
    config = TINY.override({"gan_start": "100", "steps_per_epoch": "1", "revive_every": "0"})
    trainer = Trainer(config, Process(0, 1, torch.device("cpu")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            trainer.step(0.1 * torch.randn(2, 1, config.segment))
    assert trainer.opt_d.param_groups[0]["lr"] == pytest.approx(trainer.lr)


def test_a_batch_with_non_finite_gradients_updates_nothing() -> None:
    trainer = Trainer(dataclasses.replace(TINY, revive_every=0), Process(0, 1, torch.device("cpu")))
    before = {k: v.clone() for k, v in trainer.codec.state_dict().items()}
    bad = 0.1 * torch.randn(2, 1, TINY.segment)
    bad[0, 0, 100] = float("nan")
    trainer.step(bad)
    skipped = 2 if TINY.gan_start == 0 else 1  # the discriminators' update as well
    assert trainer.skipped_updates == skipped and trainer.step_count == 1
    assert all(torch.equal(v, trainer.codec.state_dict()[k]) for k, v in before.items())
    trainer.step(0.1 * torch.randn(2, 1, TINY.segment))  # a good batch still trains
    assert trainer.skipped_updates == skipped
    assert not all(torch.equal(v, trainer.codec.state_dict()[k]) for k, v in before.items())


def test_freeze_encoder_trains_the_decoder_only() -> None:
    config = dataclasses.replace(TINY, freeze_encoder=True, gan_start=0)
    trainer = Trainer(config, Process(0, 1, torch.device("cpu")))
    before = {k: v.clone() for k, v in trainer.codec.state_dict().items()}
    wav = 0.1 * torch.randn(2, 1, TINY.segment, generator=torch.Generator().manual_seed(3))
    for _ in range(2):
        trainer.step(wav)
    after = trainer.codec.state_dict()
    changed = {k for k, v in before.items() if not torch.equal(v, after[k])}
    assert changed and all(k.startswith("decoder.") for k in changed)
    assert any(k.startswith("encoder.") for k in before)
    assert trainer.reviver.every == 0  # re-seeding would change the codes too
    opt_params = {id(p) for group in trainer.opt_g.param_groups for p in group["params"]}
    assert opt_params == {id(p) for p in trainer.codec.decoder.parameters()}


def test_a_gan_without_the_mrd_trains_with_the_mpd_alone() -> None:
    config = dataclasses.replace(TINY, gan_start=0, mrd_channels=0, revive_every=0)
    trainer = Trainer(config, Process(0, 1, torch.device("cpu")))
    assert trainer.disc.mrd is None and not any(k.startswith("mrd.") for k in
                                                 trainer.disc.state_dict())
    before = {k: v.clone() for k, v in trainer.disc.state_dict().items()}
    wav = 0.1 * torch.randn(2, 1, TINY.segment, generator=torch.Generator().manual_seed(4))
    result = trainer.step(wav)
    assert result.discriminator > 0 and result.generator.adversarial > 0
    assert not all(torch.equal(v, trainer.disc.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="mrd_channels"):
        dataclasses.replace(TINY, mrd_channels=-1)


def test_bf16_autocast_path_gives_float32_losses() -> None:
    """CPU autocast stands in for CUDA here: the precision boundaries must hold."""
    trainer = Trainer(TINY, Process(0, 1, torch.device("cpu")))
    trainer.generator.bf16 = True
    result = trainer.step(0.1 * torch.randn(2, 1, TINY.segment))
    assert all(v.dtype == torch.float32 and v.isfinite() for _, v in result.generator.items())
    assert result.discriminator.dtype == torch.float32


def _options(data_dir: Path, run_dir: Path, **changes) -> RunOptions:
    return RunOptions(data_dir, run_dir, workers=0, quiet=True, device="cpu", **changes)


def _losses(run_dir: Path) -> dict[int, dict]:
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return {r["step"]: {k: v for k, v in r.items() if k.startswith("loss_")}
            for r in records if r["event"] == "train"}


def test_resume_equals_uninterrupted_run(data_dir: Path, tmp_path: Path) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    run(TINY, _options(data_dir, whole, max_steps=4))
    first = run(TINY, _options(data_dir, parts, max_steps=2))
    assert first.step == 2 and first.reason == "done"
    second = run(None, _options(data_dir, parts, max_steps=4, resume=True))
    assert second.step == 4
    a, b = load_state(whole / STATE_NAME), load_state(parts / STATE_NAME)
    assert a["step"] == b["step"] == 4
    for key in ("generator", "discriminators"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), name
    assert a["opt_g"]["state"][0]["exp_avg"].equal(b["opt_g"]["state"][0]["exp_avg"])
    assert _losses(whole) == _losses(parts)
    assert second.fingerprint == weights.load(whole / "apcodec.pt").fingerprint


def test_export_loads_as_trained_weights(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.pt"
    result = run(TINY, _options(data_dir, tmp_path / "run", max_steps=1, export=out))
    loaded = weights.load(out)
    assert loaded.trained and loaded.fingerprint == result.fingerprint
    assert loaded.info["steps"] == 1 and loaded.info["train_preset"] == "tiny"
    assert loaded.model.config == TINY.codec
    codes = loaded.model.encode(torch.zeros(1, 1, 3200))
    assert codes.shape == (1, 4, 10)
    warm = Trainer(TINY.override({"seed": "7"}), Process(0, 1, torch.device("cpu")))
    assert initialise(warm.codec, out) == result.fingerprint
    plain = remove_weight_norm(warm.codec).state_dict()
    for name, tensor in loaded.model.state_dict().items():
        assert torch.allclose(plain[name], tensor, atol=1e-6), name


def test_weight_norm_round_trip_keeps_the_function() -> None:
    torch.manual_seed(0)
    model = apply_weight_norm(APCodec(TINY.codec))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    wav = 0.1 * torch.randn(1, 1, 1600)
    with torch.no_grad():
        before = model(wav).wav
        after = remove_weight_norm(model)(wav).wav
    assert torch.allclose(before, after, atol=1e-5)
    assert not any("parametrizations" in name for name in model.state_dict())


def test_cli_trains_stops_on_time_and_refuses_misuse(data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "cli"
    args = ["--data", str(data_dir), "--run-dir", str(run_dir), "--quiet", "--stream",
            "--workers", "0", "--device", "cpu"]
    result = invoke(train, *args, "--preset", "tiny", "--max-minutes", "1e-9")
    assert result.exit_code == 0, result.output
    assert load_state(run_dir / STATE_NAME)["step"] == 1  # stopped after one step
    stop = json.loads((run_dir / "log.jsonl").read_text().splitlines()[-1])
    assert stop["event"] == "stop" and stop["reason"] == "time"
    assert invoke(train, *args, "--preset", "tiny").exit_code == 1  # run exists
    assert invoke(train, *args, "--resume", "--preset", "tiny").exit_code == 2
    assert invoke(train, *args, "--set", "nope=1").exit_code == 2
    result = invoke(train, *args, "--resume", "--max-steps", "2")
    assert result.exit_code == 0, result.output
    assert load_state(run_dir / STATE_NAME)["step"] == 2


def test_codebooks_are_seeded_from_data_then_dead_entries_reseeded() -> None:
    from apcodec_cli.nn.quantizer import ResidualVQ
    from apcodec_cli.train.codebook import CodebookReviver

    torch.manual_seed(0)
    rvq = ResidualVQ(latent_dim=8, n_codebooks=2, codebook_size=16, codebook_dim=4)
    reviver = CodebookReviver(rvq, every=3, process=Process(0, 1, torch.device("cpu")))
    out = rvq(torch.randn(2, 8, 10))
    assert reviver.update(out, step=0) == 32  # every entry of both stages, from the batch
    pool = out.projected[0].transpose(1, 2).reshape(-1, 4)
    assert all((pool == row).all(dim=1).any() for row in rvq.stages[0].codebook.weight)
    before = rvq.stages[1].codebook.weight.clone()
    out = rvq(torch.randn(2, 8, 10))
    assert reviver.update(out, step=1) == 0 and reviver.update(out, step=2) == 0
    used = torch.zeros(2, 16, dtype=torch.bool)
    for stage in range(2):
        used[stage, out.codes[:, stage].flatten()] = True
    assert reviver.update(out, step=3) == int((~used).sum())
    after = rvq.stages[1].codebook.weight
    assert torch.equal(after[used[1]], before[used[1]])
    assert not torch.equal(after[~used[1]], before[~used[1]])


def test_distillation_aligns_the_teacher_and_lowers_the_students_loss(
        tmp_path: Path, tiny_weights: Path) -> None:
    from apcodec_cli.train.distill import Teacher

    config = TINY.override({"codec": json.dumps(
        {**TINY.codec.to_dict(), "name": "tiny-s", "causal": True, "grn_window": 24}),
        "teacher": str(tiny_weights), "revive_every": "0"})
    trainer = Trainer(config, Process(0, 1, torch.device("cpu")))
    initialise(trainer.codec, tiny_weights)  # a warm start from the non-causal twin
    teacher = trainer.teacher
    assert teacher is not None and teacher.delay == 120
    g = torch.Generator().manual_seed(0)
    wav = 0.3 * torch.randn(2, 1, config.segment, generator=g)
    out = teacher(wav)
    assert out.latent.shape == (2, 32, config.segment // 320)
    assert out.log_amp.shape == (2, 513, config.segment // 40)
    results = [trainer.step(wav).generator for _ in range(6)]
    assert all(r.distill > 0 for r in results)
    assert results[-1].total < results[0].total
    with pytest.raises(ValueError, match="cannot teach"):
        Teacher(tiny_weights, TINY.codec, torch.device("cpu"))  # the student must be causal


def test_a_deeper_codec_starts_from_smaller_weights_computing_the_same(
        tiny_weights: Path) -> None:
    from apcodec_cli.train.checkpoint import StateError
    small = apply_weight_norm(weights.load(tiny_weights).model).eval()
    deeper = apply_weight_norm(APCodec(small.config.replace(n_blocks=3)))
    initialise(deeper, tiny_weights)
    deeper.eval()
    wav = 0.3 * torch.randn(1, 1, 4800, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = small(wav), deeper(wav)
    assert torch.equal(a.quantized.codes, b.quantized.codes)
    torch.testing.assert_close(b.log_amp, a.log_amp, rtol=0, atol=1e-5)
    new_block = deeper.decoder.phase.stack.blocks[2]
    assert not new_block.pwconv2.weight.any() and new_block.pwconv1.weight.any()
    out = deeper(wav)  # the new blocks learn: their last layer gets a gradient
    (out.log_amp.square().mean() + out.phase.sin().mean()).backward()
    assert new_block.pwconv2.weight.grad.abs().sum() > 0
    with pytest.raises(StateError, match="differs"):  # wider: not a deepening
        initialise(apply_weight_norm(APCodec(small.config.replace(dim=24, n_blocks=3))),
                   tiny_weights)
    two = tiny_weights.parent / "two-blocks.pt"
    weights.save(two, APCodec(small.config.replace(n_blocks=2)).eval(), trained=False)
    with pytest.raises(StateError, match="differs"):  # shallower than the file
        initialise(apply_weight_norm(APCodec(small.config)), two)


def test_speech_share_sets_the_fraction_of_speech_crops() -> None:
    from apcodec_cli.train.crops import share_weights
    clips = ([Clip(f"s{i}", 0, 20_000, "train", category="speech") for i in range(2)]
             + [Clip(f"m{i}", 0, 90_000, "train", category="music") for i in range(3)])
    assert share_weights(clips, 0.0) is None
    weights = share_weights(clips, 0.5)
    planner = CropPlanner([c.frames for c in clips], 1600, 64, (0.0, 0.0), 0, weights=weights)
    drawn = torch.cat([planner.plan(step).clips.flatten() for step in range(50)])
    speech = (drawn < 2).double().mean().item()
    assert speech == pytest.approx(0.5, abs=0.03)  # by length alone it would be 0.13


def test_a_warm_start_keeps_its_loaded_codebooks(data_dir: Path, tmp_path: Path,
                                                 tiny_weights: Path) -> None:
    """With --init the reviver's check of step 0 would find most loaded entries unused by
    the first batch and re-seed them; it is skipped (at lr 0 nothing else moves them)."""
    out = tmp_path / "warm.pt"
    run(TINY.override({"lr": "0"}), _options(data_dir, tmp_path / "run", max_steps=1,
                                              init=tiny_weights, export=out))
    before, after = weights.load(tiny_weights).model, weights.load(out).model
    for a, b in zip(before.quantizer.stages, after.quantizer.stages):
        assert torch.equal(a.codebook.weight, b.codebook.weight)


def test_rng_state_restores_on_a_machine_with_fewer_gpus(monkeypatch) -> None:
    from apcodec_cli.train import checkpoint

    restored: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state",
                        lambda state, device="cuda": restored.append(device))
    saved = {"cpu": torch.get_rng_state(), "cuda": [torch.get_rng_state()] * 8}  # 8 GPUs
    checkpoint.set_rng_state(saved)
    assert restored == [0]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    checkpoint.set_rng_state(saved)  # and on a machine with none
    assert restored == [0]


def test_crop_seeds_are_distinct_and_checked() -> None:
    from apcodec_cli.train.config import SEED_BITS
    from apcodec_cli.train.crops import crop_seed

    top = (1 << SEED_BITS) - 1
    corners = {crop_seed(s, r, t) for s in (0, top) for r in (0, 255) for t in (0, 2**32 - 1)}
    assert len(corners) == 8 and max(corners) < 2**63
    torch.Generator().manual_seed(max(corners))
    for seed, rank, step in ((top + 1, 0, 0), (0, 256, 0), (0, 0, 2**32), (-1, 0, 0)):
        with pytest.raises(ValueError, match="crop seed"):
            crop_seed(seed, rank, step)
    with pytest.raises(ValueError, match="seed must be in"):
        TINY.override({"seed": str(top + 1)})
    with pytest.raises(ValueError, match="crop seed"):
        CropPlanner([16_000], 1600, 2, (0.0, 0.0), seed=0, rank=256)


def test_a_run_whose_config_fails_to_write_leaves_no_half_config(data_dir, tmp_path,
                                                                  monkeypatch) -> None:
    from helpers import disk_fills_while_writing, partials

    disk_fills_while_writing(monkeypatch, "config.json")
    with pytest.raises(OSError):
        run(TINY, _options(data_dir, tmp_path / "run", max_steps=1))
    assert not (tmp_path / "run" / "config.json").exists() and partials(tmp_path) == []


def test_a_heldout_corpus_is_scored_at_every_validation(data_dir: Path, tmp_path: Path) -> None:
    heldout = tmp_path / "heldout"
    heldout.mkdir()
    rows = [{"path": str(data_dir / f"clip{i}.flac"), "split": "heldout",
             "category": "music"} for i in range(2)]
    (heldout / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = TINY.override({"val_every": "2", "val_clips": "2"})
    run(config, _options(data_dir, tmp_path / "run", max_steps=4, heldout=heldout))
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text()
               .splitlines()]
    scored = [r for r in records if r["event"] == "heldout"]
    assert [r["step"] for r in scored] == [2, 4]
    assert all(math.isfinite(r["lsd_db"]) and math.isfinite(r["level_db"]) for r in scored)


def test_train_says_when_validation_lacks_its_metric_packages(monkeypatch, capsys) -> None:
    from apcodec_cli.evaluate import metrics
    from apcodec_cli.train import cli as train_cli

    def missing(module: str) -> None:
        raise metrics.MissingDependencyError(f"the {module!r} module is missing: "
                                             "pip install 'apcodec[eval]'")

    train_cli._warn_missing_metrics()  # installed here: nothing to say
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(metrics, "require", missing)
    train_cli._warn_missing_metrics()
    assert capsys.readouterr().err == (
        "apcodec: warning: validation scores LSD, log-mel and level only: the 'visqol' "
        "module is missing: pip install 'apcodec[train]'\n")


@pytest.mark.slow
def test_sigterm_to_the_process_group_saves_and_exports(data_dir: Path, tmp_path: Path) -> None:
    """A scheduler or `kill -- -PGID` signals the data workers too: the run still stops at
    a step boundary with its state saved and its weights exported."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "apcodec_cli.train.cli", "--data", str(data_dir), "--run-dir",
         str(run_dir), "--preset", "tiny", "--set", "steps=100000", "--stream", "--workers",
         "1", "--device", "cpu", "--threads", "1", "--quiet"],
        start_new_session=True, stderr=subprocess.PIPE)
    log = run_dir / "log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.exists() and '"train"' in log.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(60) == 130, proc.stderr.read().decode()
    stop = json.loads(log.read_text().splitlines()[-1])
    assert stop["event"] == "stop" and stop["reason"] == "signal"
    assert load_state(run_dir / STATE_NAME)["step"] == stop["step"]
    assert weights.load(run_dir / "apcodec.pt").info["steps"] == stop["step"]


def test_a_foreign_or_newer_state_file_is_refused_in_one_line(tmp_path: Path) -> None:
    from apcodec_cli.train.checkpoint import FORMAT, VERSION, StateError, load_state
    foreign, newer = tmp_path / "foreign.pt", tmp_path / "newer.pt"
    torch.save({"format": "something else"}, foreign)
    torch.save({"format": FORMAT, "version": VERSION + 1}, newer)
    with pytest.raises(StateError, match="not an apcodec training state file"):
        load_state(foreign)
    with pytest.raises(StateError, match="is not supported"):
        load_state(newer)
