"""`make bench`: run the benchmarks in BENCHMARKS in turn. Every other one (speakers,
spoken_search, faces, campplus_int8, ...) runs on its own with the command its section of
benchmarks/README.md gives (`.venv/bin/python -m benchmarks.NAME --help`)."""
import importlib.util
import subprocess
import sys

BENCHMARKS = ["batch_memory", "speech", "text_models", "visual_speed", "motion_quality", "gui_stall"]

failed = []
for name in BENCHMARKS:
    if importlib.util.find_spec(f"benchmarks.{name}") is None:
        continue
    print(f"\n=== benchmarks.{name} ===", flush=True)
    cmd = [sys.executable, "-m", f"benchmarks.{name}"]
    if name == "gui_stall":
        cmd = ["xvfb-run", "-a", *cmd]
    if subprocess.run(cmd).returncode != 0:
        failed.append(name)
sys.exit(1 if failed else 0)
