"""A --service-script that fails while it is imported, every time."""

print("crash service starting")
raise RuntimeError("the crash service always fails")
