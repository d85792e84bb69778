"""Jobs Naiad itself submits (evaluate, quantize), run from a snapshot like any script."""
