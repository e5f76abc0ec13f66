"""Benchmarks: each ``bench_*`` module measures Python and the pinned JS reference in the same run.

``python -m bench`` runs them all (``--quick`` uses tiny sizes, for a smoke test).
"""
