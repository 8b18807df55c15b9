"""Print the environment (versions, CPU features, GPU) and flag known-bad combinations.

Exit status 1 when a problem is found. ``--json`` prints machine-readable output.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kits.core import cli  # noqa: E402

cli.quiet_environment()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from kits.core.env import report

    info = report()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"python      {info['python']} ({info['platform']}, {info['cpu_count']} CPUs)")
        for name, version in info["packages"].items():
            print(f"{name:<16}{version or '-'}")
        flags = " ".join(f for f, on in info["cpu_features"].items() if on) or "none of interest"
        print(f"cpu features {flags}")
        print(f"gpu         {info['gpu']}")
        for problem in info["problems"]:
            print(f"PROBLEM: {problem}")
        print("OK: no known-bad combination" if not info["problems"] else "")
    return 1 if info["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
