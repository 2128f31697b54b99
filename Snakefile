# The promised entry point: `snakemake` from the repository root runs the workflow defined in
# workflow/Snakefile (the Snakemake-catalog layout, also usable as a module; see config/README.md).


include: "workflow/Snakefile"


# An included file cannot make its rule the default target (Snakemake restores the includer's after
# an include), so the root names it: `snakemake` alone builds `rule all` of workflow/Snakefile.
workflow.default_target = "all"
