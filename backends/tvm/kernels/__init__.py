"""Hand-written TE/TIR kernels used by the emitters."""
