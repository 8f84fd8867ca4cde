"""Per-backend online least-squares model of a call's seconds from its token counts.

``service_s ~ a + b * input_tokens + c * output_tokens`` (overhead, prefill seconds per token,
decode seconds per token). Only the sufficient statistics ``X'X`` (3x3) and ``X'y`` (3) are kept,
so an update is O(1) and the model round-trips exactly through JSON.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.errors import GraphError

MIN_CALLS = 10
"""Calls with both token counts needed before the model is used for prediction."""
_SCALE = np.array([1.0, 1e-3, 1e-3])  # tokens in thousands keep X'X well conditioned
_RIDGE = 1e-9


class TokenModel:
    """Online linear regression of call seconds on (1, input_tokens, output_tokens)."""

    __slots__ = ("_coef", "_sums", "n")

    def __init__(self) -> None:
        self.n = 0
        # running sums as Python floats: [i, o, ii, io, oo, y, iy, oy] (n is the 1*1 term)
        self._sums = [0.0] * 8
        self._coef: NDArray[np.float64] | None = None

    @property
    def xtx(self) -> NDArray[np.float64]:
        """``X'X`` of the design rows (1, input_tokens, output_tokens)."""
        i, o, ii, io, oo = self._sums[:5]
        return np.array([[float(self.n), i, o], [i, ii, io], [o, io, oo]])

    @property
    def xty(self) -> NDArray[np.float64]:
        """``X'y`` with y = seconds."""
        return np.array(self._sums[5:])

    def add(self, input_tokens: int, output_tokens: int, service_s: float) -> None:
        """Fold one call in (O(1), no allocation)."""
        x_in, x_out, y = float(input_tokens), float(output_tokens), float(service_s)
        s = self._sums
        s[0] += x_in
        s[1] += x_out
        s[2] += x_in * x_in
        s[3] += x_in * x_out
        s[4] += x_out * x_out
        s[5] += y
        s[6] += x_in * y
        s[7] += x_out * y
        self.n += 1
        self._coef = None

    def add_many(self, calls: Iterable[tuple[int, int, float]]) -> None:
        """:meth:`add` of each ``(input_tokens, output_tokens, service_s)`` in order: the same
        sums bit for bit (each the same additions in the same order), kept in locals."""
        i, o, ii, io, oo, y, iy, oy = self._sums
        n = 0
        for tokens_in, tokens_out, seconds in calls:
            x_in, x_out, t = float(tokens_in), float(tokens_out), float(seconds)
            i += x_in
            o += x_out
            ii += x_in * x_in
            io += x_in * x_out
            oo += x_out * x_out
            y += t
            iy += x_in * t
            oy += x_out * t
            n += 1
        if n:
            self._sums = [i, o, ii, io, oo, y, iy, oy]
            self.n += n
            self._coef = None

    def coef(self) -> NDArray[np.float64] | None:
        """``[a_s, b_s_per_token, c_s_per_token]`` or None before :data:`MIN_CALLS` calls."""
        if self.n < MIN_CALLS:
            return None
        if self._coef is None:
            a = self.xtx * np.outer(_SCALE, _SCALE) + _RIDGE * np.eye(3)
            b = self.xty * _SCALE
            scaled, *_ = np.linalg.lstsq(a, b, rcond=None)
            self._coef = scaled * _SCALE
        return self._coef

    def predict_s(
        self, input_tokens: float, output_tokens: NDArray[np.float64]
    ) -> NDArray[np.float64] | None:
        """Predicted seconds (clipped at 0) per output-token draw, or None if not fitted."""
        coef = self.coef()
        if coef is None:
            return None
        pred = coef[0] + coef[1] * input_tokens + coef[2] * output_tokens
        return np.asarray(np.maximum(pred, 0.0), dtype=np.float64)

    def to_dict(self) -> dict[str, object]:
        """JSON form: sufficient statistics plus the fitted coefficients (or null)."""
        coef = self.coef()
        return {
            "n": self.n,
            "xtx": [[float(v) for v in row] for row in self.xtx],
            "xty": [float(v) for v in self.xty],
            "coef": None if coef is None else [float(v) for v in coef],
        }

    @staticmethod
    def from_dict(data: dict[str, object]) -> TokenModel:
        """Inverse of :meth:`to_dict` (coefficients are recomputed)."""
        model = TokenModel()
        try:
            n = data["n"]
            xtx = np.asarray(data["xtx"], dtype=np.float64)
            xty = np.asarray(data["xty"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise GraphError(f"bad token model: {exc}") from exc
        if not isinstance(n, int) or n < 0 or xtx.shape != (3, 3) or xty.shape != (3,):
            raise GraphError("bad token model: need n >= 0, xtx 3x3 and xty of length 3")
        if not (np.isfinite(xtx).all() and np.isfinite(xty).all()):
            raise GraphError("bad token model: non-finite statistics")
        if float(xtx[0, 0]) != float(n):
            raise GraphError("bad token model: xtx[0][0] must equal n")
        model.n = n
        model._sums = [
            float(xtx[0, 1]),
            float(xtx[0, 2]),
            float(xtx[1, 1]),
            float(xtx[1, 2]),
            float(xtx[2, 2]),
            *(float(v) for v in xty),
        ]
        return model
