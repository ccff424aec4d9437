"""The PoolSwitch conformance runner: cases as data, the real proxy, one client per SDK.

    models.py    the case files' schema: declarative pydantic models, strict, with messages
    schema.py    load `cases/*.yaml` with the models into the runner's frozen `Case`s
    matchers.py  compare an expected value with a seen one: JSON subset and `$` matchers
    compare.py   a request's result and the upstream's record against a step's expectations
    patterns.py  `--run` globs and the `known-failing/<sdk>.txt` lists
    settings.py  a case's proxy settings (base, overrides, keys, pools), checked by the server
    client.py    the long-lived client program, spoken to over JSON Lines
    execute.py   one case: fake upstream, proxy (`poolswitch_testing.proxy`; one per replica),
                 steps, verdict
    cli.py       the command line: select, run (two at a time, on one redis-server), report

Run it as `python conformance/run_cases.py --sdk raw`, or `python -m poolswitch_testing.conformance
--sdk raw` from the repository's root (see conformance/README.md).
"""
