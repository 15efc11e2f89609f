"""Simulated hardware: devices that hold `DeviceAdapterService.Connect` streams.

Rooms warm and cool by a small thermal model on a sped-up clock; heaters keep
a target by thermostat; every device answers commands exactly once and can be
told to misbehave (drop its stream, fall silent, report an alarm, ...), so
tests and benchmarks can drive the adapter as real hardware would.

A development tool, not a service: it imports nothing from `services`.
"""
