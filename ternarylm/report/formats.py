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
    "frac_zero_init",  # the same module's zero fraction at initialisation (empty: seed unknown)
    "frac_pos",
    "frac_neg",
    "alpha",
    "n_weights",
]

# bench/{device}/results.csv, written by ternarylm.bench: a row is the form a model ships as
# (deployed) or a reference point (baseline); only deployed rows may decide a claim
ROLE_COLUMN = "role"
ROLES = ("deployed", "baseline")

# control runs (config `controls`): a pretraining variant and a fine-tuning backbone beside the twins
NONCAUSAL = "fp32-noncausal"  # the FP32 twin without the causal mask (the authors' baseline)
SCRATCH = "scratch"  # the ternary architecture fine-tuned from random init, never pretrained

# models/{corpus}/{variant}/seed{s}/trajectory.csv, written by ternarylm.trajectory during pretraining:
# one row per (eval step, layer, module), plus a size-weighted module=all row per layer
TRAJECTORY_FIELDS = [
    "step",
    "epoch",
    "layer",
    "layer_index",
    "module",
    "quantized",  # False: the fp32 twin's weights, counted as absmean rounding would (a control)
    "frac_zero",
    "alpha",
    "absmean_over_std",  # sqrt(2/pi) = 0.798 for a Gaussian
    "excess_kurtosis",  # 0 for a Gaussian
    "n_weights",
]
