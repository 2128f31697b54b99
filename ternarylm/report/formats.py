"""Column lists of artifacts written by a torch stage and read by the report: one list for both.

Its own module, importing nothing, because the torch env (which has no pandas) imports it too.
"""

# sparsity/{variant}/seed{s}.csv, written by ternarylm.sparsity
SPARSITY_FIELDS = [
    "variant",
    "layer",
    "layer_index",
    "module",
    "quantized",
    "frac_zero",
    "frac_pos",
    "frac_neg",
    "alpha",
    "n_weights",
]
