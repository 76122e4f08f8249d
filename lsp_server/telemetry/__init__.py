"""Usage records and (later) traces: what every provider attempt cost and why."""
