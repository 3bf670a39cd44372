"""The reference news recommender the kit monitors on its local stack.

`data` generates a seeded catalog, users and click logs plus the monitoring job's inputs;
`model` trains an implicit-feedback matrix factorisation with a diversity re-ranker (and the
regressed versions that reproduce the incident), writes `model.tar.gz` artifacts and loads them;
`server` serves a model directory under the SageMaker inference container contract.
"""
