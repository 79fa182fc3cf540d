"""blis-sim: a discrete-event simulator of vLLM inference serving."""

__version__ = "0.1.0"
