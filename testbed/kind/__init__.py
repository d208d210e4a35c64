"""The kind end-to-end flow (``make kind-e2e``): the chart's pods as real containers on a kind
cluster, driven the way a user drives one (kubectl, helm, kind, docker), on any cluster
``scripts/kind-up.sh`` made, a user's included.

``python -m testbed.kind`` runs it (``flow``); each step lives in a module of its own and records
named checks and figures in a ``Report`` (``report``), written as JSON for ``tests/kind``. Pure
parts (manifests, mount tables, I/O logs) are apart from the commands that run things
(``commands``), so they are tested by plain tables.
"""
