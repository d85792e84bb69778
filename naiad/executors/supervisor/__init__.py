"""The process that owns one job on a machine: lays out its directory, stages its inputs,
launches it (torchrun for many processes), retries, stops, packs and uploads its outputs.

It is started detached by an executor and never needs the server to be up.
"""
