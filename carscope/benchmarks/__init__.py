"""Benchmarks of every stage (`carscope bench ...`), JSON + Markdown + PNG under benchmarks/results/."""
