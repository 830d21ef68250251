"""The codecs of one process (the CLI's, or a `--jobs` worker: see `runtime.py`), each
loaded once, on first use, as its `Loading` says."""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, BinaryIO

from .report import warn

if TYPE_CHECKING:  # torch loads with the first codec, not with the command line
    from ..codec import Codec


@dataclasses.dataclass(frozen=True)
class Loading:
    """How a process (the CLI's or a `--jobs` worker) loads its codecs."""

    weights: str | None = None  # None: the installed default of each kind
    device: str = "auto"
    quiet: bool = False  # no warning about untrained weights
    precision: str | None = None  # None: $APCODEC_PRECISION, else auto


class Codecs:
    """The codecs of one process, each loaded once, on first use, as `loading` says.

    The CLI's process makes one in `run` and hands it to every conversion; each `--jobs`
    worker makes its own when it starts (`batch.run_jobs`' `prepare`).
    """

    def __init__(self, loading: Loading) -> None:
        self.loading = loading
        # by streamable (the newest release), "explicit" (--weights), or the (weights,
        # tables) paths of a release that a file needs
        self._loaded: dict[Any, Codec] = {}

    def get(self, streamable: bool, shared: Any = None) -> Codec:
        """The codec for the full (False) or the streamable (True) model: --weights if given
        (whatever model it holds, but streaming needs the streamable one), else the
        installed default of that kind. `shared`: the full model's codec whose forward
        passes a folder shares (`batch.convert_files`), used instead of this process's."""
        if shared is not None and not streamable:
            return shared
        loading = self.loading
        key = "explicit" if loading.weights else streamable
        if key not in self._loaded:
            from ..codec import Codec  # deferred: `apcodec --help` and `info` stay fast

            loaded = Codec.load(loading.weights, device=loading.device, streamable=streamable,
                                precision=loading.precision)
            if not loaded.weights.trained:
                warn(f"{loaded.weights.path} holds UNTRAINED weights (random initialisation): "
                     "the decoded audio will not resemble the input", loading.quiet)
            self._loaded[key] = loaded
        found = self._loaded[key]
        if streamable and not found.config.causal:
            from ..models.weights import WeightsError

            raise WeightsError(f"{found.weights.path} holds the full (non-streamable) model; "
                             "streaming needs the streamable one: pass other --weights")
        return found

    def for_file(self, source: str | BinaryIO, shared: Any = None) -> Codec:
        """The codec that can decode `source` (a path or seekable file): by its header
        (`shared` as for `get`)."""
        from ..format.bitstream import peek_header

        if isinstance(source, str):
            with open(source, "rb") as f:
                return self.for_header(peek_header(f), shared)
        return self.for_header(peek_header(source), shared)

    def for_header(self, header: Any, shared: Any = None) -> Codec:
        """The codec that decodes a file with this header: --weights (or $APCODEC_WEIGHTS,
        $APCODEC_STREAM_WEIGHTS) if given, else the installed release that made it
        (`releases.find`), loaded once (`shared` as for `get`, when it is that one)."""
        from ..models.weights import ENV_VAR, STREAM_ENV_VAR

        streamable = header.streamable
        if self.loading.weights or os.environ.get(STREAM_ENV_VAR if streamable else ENV_VAR):
            return self.get(streamable, shared)
        for found in ([shared] if shared is not None and not streamable else []) + \
                [c for k, c in self._loaded.items() if k != "explicit"]:
            if found.config.causal == streamable and found.matches(header):
                return found
        from ..codec import Codec
        from ..models.releases import require

        match = require(header)
        key = (str(match.path), str(match.tables))
        if key not in self._loaded:
            self._loaded[key] = Codec.load(match.path, device=self.loading.device,
                                           precision=self.loading.precision,
                                           tables=match.tables)
        return self._loaded[key]

    @property
    def full(self) -> Codec | None:
        """The installed full model's codec once loaded (not an explicit --weights')."""
        return self._loaded.get(False)
