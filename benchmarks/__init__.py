"""Speed and memory benchmarks, printed as tables: `make bench` (or `python -m benchmarks [name ...]`)."""


def load_or_say(name: str):
    """`wm_hub.load(name)`, or None after printing that `name` is not shipped here (nothing to time)."""
    from wm_hub.hub import ModelNotFoundError, load

    try:
        return load(name)
    except ModelNotFoundError:
        print(f"{name} is not shipped here yet: nothing to time")
        return None
