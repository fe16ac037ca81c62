# Conveniences over dev.py, which needs nothing but python3.
.PHONY: demo test docs lint bench

demo:
	python3 dev.py demo

test:
	python3 dev.py test

docs:
	python3 dev.py docs

lint:
	.venv/bin/python -m ruff check skinfluence tests benchmarks examples
	.venv/bin/python -m ruff format --check skinfluence tests benchmarks examples

bench:
	python3 dev.py bench bench_exact.py
	python3 dev.py bench bench_svm.py
