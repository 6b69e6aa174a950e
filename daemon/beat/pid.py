"""The genomic PID on the beat time (SPEC 2.4).

error ΔT = T_obs − T_threshold; the integral is clamped to ±integral_limit
(anti-windup) and reset to 0 when |ΔT| < reset_epsilon; dt is the real time
since the previous beat. Lyapunov check: V = ΔT²; the loop is *stable* when
V has not increased over the last ``window`` beats.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from venom.daemon.config.settings import PidConfig
from venom.schemas import PidState


class GenomicPid:
    """PID controller whose raw output nudges the O weight of the genome."""

    def __init__(self, config: PidConfig | None = None) -> None:
        self.config = config or PidConfig()
        self.kp = self.config.kp
        self.ki = self.config.ki
        self.kd = self.config.kd
        self._v: deque[float] = deque(maxlen=self.config.window)
        self.reset()

    def reset(self) -> None:
        """Forget the integral, the previous error and the Lyapunov window."""
        self.integral = 0.0
        self.prev_error: float | None = None
        self._v.clear()
        self._state = PidState()

    def restore(self, states: Sequence[PidState]) -> None:
        """Continue after ``states`` (the last beats', oldest first): integral, error, window."""
        if not states:
            self.reset()
            return
        last = states[-1]
        self.integral = last.integral
        self.prev_error = last.error
        self._v.clear()
        self._v.extend(s.error * s.error for s in states[-self.config.window :])
        self._state = last

    def set_gains(self, kp: float, ki: float, kd: float) -> None:
        """Change the gains (the balance core may recommend them)."""
        self.kp, self.ki, self.kd = kp, ki, kd

    @property
    def stable(self) -> bool:
        """V = ΔT² has not increased over the window."""
        v = self._v
        return len(v) < 2 or v[-1] <= v[0]

    @property
    def state(self) -> PidState:
        return self._state

    def update(self, t_obs: float, dt: float) -> PidState:
        """One beat: feed the observed beat time, get the new state."""
        cfg = self.config
        error = t_obs - cfg.t_threshold
        if abs(error) < cfg.reset_epsilon:
            self.integral = 0.0
        elif dt > 0:
            lim = cfg.integral_limit
            self.integral = min(lim, max(-lim, self.integral + error * dt))
        prev = self.prev_error
        derivative = 0.0 if prev is None or dt <= 0 else (error - prev) / dt
        self.prev_error = error
        output = self.kp * error + self.ki * self.integral + self.kd * derivative
        self._v.append(error * error)
        self._state = PidState(
            error=error,
            integral=self.integral,
            derivative=derivative,
            output=output,
            stable=self.stable,
        )
        return self._state
