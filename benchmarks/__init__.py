"""localckpt benchmarks: every workload on every store configuration and on the peers.

Run ``python -m benchmarks`` (``--quick`` for a smoke run, ``--only NAME`` to pick
workloads, ``--configs sqlite+local,postgres+s3`` to pick configurations). Reports go to
``benchmarks/results/<date>-<host>.md`` with the raw figures as JSON and one log-log PNG
per workload. See benchmarks/README.md.
"""

REPORT_FORMAT = 1
