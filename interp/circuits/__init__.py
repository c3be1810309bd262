"""Circuit discovery: tasks, the discretized-SAE-code method, baselines (activation patching, EAP,
ACDC), reference circuits and metrics. `run_circuits` is the one entry point."""

from interp.circuits.run import METHODS, CircuitConfig, CircuitResult, MethodRun, run_circuits

__all__ = ["METHODS", "CircuitConfig", "CircuitResult", "MethodRun", "run_circuits"]
