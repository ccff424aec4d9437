"""The PoolSwitch conformance runner: cases as data, the real proxy, one client per SDK.

    schema.py    load and check `cases/*.yaml` strictly (unknown fields are errors)
    matchers.py  compare an expected value with a seen one: JSON subset and `$` matchers
    compare.py   a request's result and the upstream's record against a step's expectations
    patterns.py  `--run` globs and the `known-failing/<sdk>.txt` lists
    proxy.py     one `poolswitch start` process: config, start, /health, stop, stderr tail
    client.py    the long-lived client program, spoken to over JSON Lines
    execute.py   one case: fake upstream, proxy, steps, verdict
    cli.py       the command line: select, run (two at a time), report

Run it as `python conformance/run_cases.py --sdk raw` (see conformance/README.md).
"""
