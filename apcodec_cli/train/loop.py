"""The training run: data, steps, logging, validation, saving, stopping, export.

A run lives in a folder: `state.pt` (everything to continue, written every `save_every`
steps and whenever the run stops, Ctrl-C and SIGTERM included), `config.json` (the full
configuration), `log.jsonl` (see `runlog.py`) and the exported weights `apcodec.pt`.
Resuming continues exactly where the state was saved: the batches of a step depend only on
(seed, rank, step), and the optimisers, schedules and RNG states are restored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import sys
import time
from pathlib import Path
from typing import Iterator

import torch
from tqdm import tqdm

from . import distributed
from .checkpoint import STATE_NAME, export, initialise, load_state, rng_state, save_state, \
    set_rng_state
from ..errors import ApcodecError
from ..format.atomic import atomic_text
from .config import TrainConfig
from .crops import CropPlanner, ResidentCrops, StreamCrops, share_weights
from .data import Clip, find_clips
from .runlog import LossMeter, RunLog
from .trainer import Trainer
from .validation import ValidationClip, load_validation, validate

WEIGHTS_NAME = "apcodec.pt"
CONFIG_NAME = "config.json"


class RunError(ApcodecError):
    """A run that cannot start as asked (existing run folder, bad batch split, ...)."""


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How to carry a run out; none of it changes what is computed.

    Attributes:
        data: Corpus, pack or plain audio folder.
        run_dir: Folder of the run's state, log and weights.
        resume: Continue the run saved in `run_dir` (its configuration is kept).
        device: "auto", "cpu", "cuda" or "cuda:N" (torchrun picks the local GPU itself).
        max_steps: Stop at this global step (default: the configuration's `steps`).
        max_minutes: Stop cleanly, saving, after this much wall-clock time.
        export: Where to write the weights (default `<run_dir>/apcodec.pt`).
        init: Weights file to start a new run's generator from (a warm start).
        resident: Hold the training audio in device memory (None: on CUDA, or when files
            need resampling); otherwise worker processes read crops from disk.
        workers: DataLoader worker processes when streaming from disk.
        heldout: Corpus of sources never trained on (`build_corpus.py --heldout`): each
            validation also scores its clips, logged as "heldout" records (out of source)
            beside the "validation" records of the data's own validation split (in source).
        quiet: No progress line.
    """

    data: Path
    run_dir: Path
    resume: bool = False
    device: str = "auto"
    max_steps: int | None = None
    max_minutes: float | None = None
    export: Path | None = None
    init: Path | None = None
    resident: bool | None = None
    workers: int = 2
    heldout: Path | None = None
    quiet: bool = False


@dataclasses.dataclass
class RunResult:
    """How a run invocation ended.

    Attributes:
        step: The last step taken.
        reason: "done", "time", "signal" or "peer" (another process stopped).
        weights: The exported weights file.
        fingerprint: Its fingerprint (empty on processes other than rank 0).
        main: Whether this process is rank 0, the one that reports.
    """

    step: int
    reason: str
    weights: Path
    fingerprint: bytes
    main: bool


class _StopFlag:
    """Set by SIGINT/SIGTERM while installed, so the run can stop at a step boundary."""

    def __init__(self) -> None:
        self.raised = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        def handler(signum: int, frame: object) -> None:
            self.raised = True

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


def run(config: TrainConfig | None, options: RunOptions) -> RunResult:
    """Train (a new run from `config`, or resume the one in `options.run_dir`)."""
    process = distributed.start(options.device)
    try:
        return _Run(config, options, process).execute()
    finally:
        distributed.stop(process)


class _Run:
    """One invocation of a run (fresh or resumed) in one process."""

    def __init__(self, config: TrainConfig | None, options: RunOptions,
                 process: distributed.Process) -> None:
        self.started = time.monotonic()  # --max-minutes counts the set-up too
        self.options, self.process = options, process
        state = self._prepare(config)
        self.config = TrainConfig.from_dict(state["config"]) if state else config
        if self.config.batch_size % process.world:
            raise RunError(f"batch_size {self.config.batch_size} does not split over "
                           f"{process.world} processes")
        if process.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        self.trainer = Trainer(self.config, process)
        self.init_fingerprint = ""
        if state:
            self.trainer.load_state_dict(state)
            set_rng_state(state["rng"])
        elif options.init:
            self.init_fingerprint = initialise(self.trainer.codec, options.init).hex()
            self.trainer.reviver.seed_at_start = False
        self.log = RunLog(options.run_dir)
        self.stop_flag = _StopFlag()
        self.val_clips: list[ValidationClip] = []  # rank 0 only
        self.heldout_clips: list[ValidationClip] = []  # rank 0 only

    def _prepare(self, config: TrainConfig | None) -> dict | None:
        """Check the run folder; the saved state when resuming."""
        run_dir, state_path = self.options.run_dir, self.options.run_dir / STATE_NAME
        if self.options.resume:
            return load_state(state_path)
        if config is None:
            raise RunError("a new run needs a configuration")
        if state_path.exists():
            raise RunError(f"{run_dir} already holds a run: resume it or choose another folder")
        if self.process.main:
            run_dir.mkdir(parents=True, exist_ok=True)
        distributed.barrier(self.process)
        return None

    def _batches(self, train: list[Clip], stop: int) -> tuple[Iterator[torch.Tensor], bool]:
        """Batches of steps trainer.step_count .. stop - 1 for this process, and whether
        they are drawn from resident audio."""
        c, o, p = self.config, self.options, self.process
        planner = CropPlanner([clip.frames for clip in train], c.segment,
                              c.batch_size // p.world, c.gain_db, c.seed, p.rank,
                              share_weights(train, c.speech_share), c.augment)
        native = all(clip.native for clip in train)
        resident = (p.device.type == "cuda" or not native) if o.resident is None else o.resident
        if not (resident or native):
            raise RunError(f"{o.data} has files that are not 48 kHz mono: they can only be "
                           "loaded resident (--resident), or build a corpus from them")
        if resident:
            source = ResidentCrops(train, planner, c.silence_db, p.device)
            return source.batches(self.trainer.step_count, stop), True
        source = StreamCrops(train, planner, c.silence_db, o.workers)
        return source.batches(self.trainer.step_count, stop,
                              pin_memory=p.device.type == "cuda"), False

    def execute(self) -> RunResult:
        """Train until the stop step, the time limit or a signal; then save and export."""
        c, stop = self.config, self.options.max_steps or self.config.steps
        clips = find_clips(self.options.data)
        train = [clip for clip in clips if clip.split == "train"]
        if not train:
            raise RunError(f"{self.options.data} holds no training audio")
        batches, resident = self._batches(train, stop)
        if self.process.main:
            self.val_clips = load_validation(clips, c.val_clips, c.val_seconds,
                                            c.codec.samples_per_frame)
            self.heldout_clips = [] if self.options.heldout is None else load_validation(
                find_clips(self.options.heldout), c.val_clips, c.val_seconds,
                c.codec.samples_per_frame, split="heldout")
            self._record_start(stop, resident)
        bar = tqdm(total=stop, initial=self.trainer.step_count, unit="step", file=sys.stderr,
                   dynamic_ncols=True, disable=self.options.quiet or not self.process.main)
        reason, meter = "", LossMeter()
        with self.stop_flag.installed(), bar:
            for wav in batches:
                result = self.trainer.step(wav.to(self.process.device, non_blocking=True))
                meter.add(result)
                bar.update()
                self._periodic(meter, bar)
                reason = self._stop_reason()
                if reason:
                    break
        return self._finish(reason or "done")

    def _periodic(self, meter: LossMeter, bar: tqdm) -> None:
        """Log, validate and save when their intervals come round."""
        c, step = self.config, self.trainer.step_count
        if self.process.main and step % c.log_every == 0:
            record = meter.read()
            self.log.write("train", step, lr=self.trainer.lr,
                           skipped_updates=self.trainer.skipped_updates, **record)
            bar.set_postfix(loss=f"{record['loss_total']:.3g}")
        if self.process.main and c.val_every and step % c.val_every == 0:
            self._validate()
        if step % c.save_every == 0:
            self._save()

    def _stop_reason(self) -> str:
        """'signal', 'time' or '' (go on); the same answer on every process."""
        minutes = self.options.max_minutes
        late = minutes is not None and time.monotonic() - self.started > 60 * minutes
        local = "signal" if self.stop_flag.raised else "time" if late else ""
        return (local or "peer") if distributed.any_true(bool(local), self.process) else ""

    def _validate(self) -> None:
        for kind, clips in (("validation", self.val_clips), ("heldout", self.heldout_clips)):
            if clips:
                scores = validate(self.trainer.codec, clips, self.process.device,
                                  tones=kind == "validation")
                self.log.write(kind, self.trainer.step_count, **dataclasses.asdict(scores))

    def _save(self) -> None:
        self.trainer.reviver.gather()  # a collective: every process, before rank 0 saves
        if self.process.main:
            save_state(self.options.run_dir / STATE_NAME,
                       {**self.trainer.state_dict(), "config": self.config.to_dict(),
                        "rng": rng_state()})
        distributed.barrier(self.process)

    def _record_start(self, stop: int, resident: bool) -> None:
        run_dir, step = self.options.run_dir, self.trainer.step_count
        config = self.config.to_dict()
        if self.options.resume:
            self.log.truncate_after(step)
        else:
            atomic_text(run_dir / CONFIG_NAME, json.dumps(config, indent=1) + "\n")
        env = {"torch": torch.__version__, "device": str(self.process.device),
               "world_size": self.process.world, "bf16": self.trainer.generator.bf16,
               "resident": resident, "workers": self.options.workers,
               "data": str(self.options.data), "stop_step": stop,
               "init": str(self.options.init or ""), "init_fingerprint": self.init_fingerprint,
               "max_minutes": self.options.max_minutes}
        self.log.write("start", step, resumed=self.options.resume, config=config, env=env)

    def _finish(self, reason: str) -> RunResult:
        """Save the state, validate, export the weights and log why the run stopped."""
        step = self.trainer.step_count
        if step % self.config.save_every:
            self._save()
        path = self.options.export or self.options.run_dir / WEIGHTS_NAME
        fingerprint = b""
        if self.process.main:
            if self.config.val_every and step % self.config.val_every:
                self._validate()
            fingerprint = export(path, self.trainer.codec, steps=step,
                                 train_preset=self.config.name, data=str(self.options.data))
            self.log.write("stop", step, reason=reason, weights=str(path),
                           fingerprint=fingerprint.hex())
        return RunResult(step, reason, path, fingerprint, self.process.main)
