"""The report stage: notebooks, tables, figures and claims, read from the artifacts under results/.

Nothing in this package imports torch or any ternarylm module outside ``ternarylm.report``,
``ternarylm.io`` and the torch-free ``ternarylm.layout``/``ternarylm.config``: the report
environment has no torch (tests/test_report.py checks it).
"""
