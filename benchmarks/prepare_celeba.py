"""Wall time and peak memory of ``python -m stages.prepare`` on a CelebA-sized stand-in zip.

    python -m benchmarks.prepare_celeba --num 202599 --workers 2

Target: 202,599 JPEGs of 178x218 in at most 5 minutes on 2 cores, peak memory under 2 GB.
The stand-in (the real entry names, both annotation files, 1,000 distinct JPEGs cycled) is
generated once into ``--cache-dir``. Peak memory is the largest sum of the resident sets of
the stage and all its worker processes, sampled every 0.2 s.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tests.celeba_standin import ZIP_NAME, write_celeba_standin

log = logging.getLogger("benchmarks.prepare_celeba")
REPO = Path(__file__).resolve().parents[1]


def standin(cache_dir: Path, num: int) -> Path:
    """The cached stand-in zip of ``num`` images, generated on first use."""
    directory = cache_dir / f"celeba-{num}"
    if not (directory / ZIP_NAME).is_file():
        log.info("generating %d stand-in JPEGs into %s", num, directory)
        partial = directory.with_name(directory.name + ".partial")  # complete once renamed
        write_celeba_standin(partial, num, variants=1000)
        partial.rename(directory)
    return directory / ZIP_NAME


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:  # the process ended meanwhile
            continue
        rss_kib = [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")]
        total += sum(rss_kib) * 1024  # none for a zombie
        todo.extend(int(child) for child in children)
    return total


def run_prepare(zip_path: Path, workers: int, image_size: int) -> tuple[float, int]:
    """Run the stage in a temporary working directory; return (seconds, peak bytes)."""
    with tempfile.TemporaryDirectory() as workdir:
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        params["data"].update(source="folder", path=str(zip_path), image_size=image_size,
                              num_train=None, num_test=None, workers=workers)  # fmt: skip
        Path(workdir, "params.yaml").write_text(yaml.safe_dump(params))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        start, peak = time.perf_counter(), 0
        process = subprocess.Popen([sys.executable, "-m", "stages.prepare"], cwd=workdir, env=env)
        while process.poll() is None:
            peak = max(peak, tree_rss(process.pid))
            time.sleep(0.2)
        seconds = time.perf_counter() - start
        if process.returncode:
            raise SystemExit(f"prepare failed with exit status {process.returncode}")
    return seconds, peak


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=202_599)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "sagan-bench"
    )
    args = parser.parse_args()
    zip_path = standin(args.cache_dir, args.num)
    seconds, peak = run_prepare(zip_path, args.workers, args.image_size)
    log.info(
        "prepare: %d images in %.1f s (%.0f images/s, %.1f min per 202,599), peak RSS %.0f MiB",
        args.num, seconds, args.num / seconds, 202_599 / (args.num / seconds) / 60, peak / 2**20,
    )  # fmt: skip


if __name__ == "__main__":
    main()
