"""Hail 0.2 `import_vcf(...).write(...)` on the same file and cores, for comparison.

Hail needs pyspark 3.5, so it runs in its own environment, outside the project's lock:
    make bench-hail            # creates benchmarks/.hail-venv and runs this on the bench files
    benchmarks/.hail-venv/bin/python benchmarks/hail_import_vcf.py FILE.vcf.gz OUT.mt [MIN_PARTITIONS]
Prints the import+write time (Hail's own start-up is reported separately).
"""

import os
import sys
import time

import hail as hl


def main() -> None:
    path, out = sys.argv[1], sys.argv[2]
    parts = int(sys.argv[3]) if len(sys.argv) > 3 else None
    t0 = time.time()
    os.makedirs("benchmarks/out", exist_ok=True)
    hl.init(master="local[2]", quiet=True, default_reference="GRCh38", log="benchmarks/out/hail.log",
            spark_conf={"spark.driver.memory": "8g"})
    t = time.time()
    mt = hl.import_vcf(path, force_bgz=True, reference_genome="GRCh38", min_partitions=parts)
    mt.write(out, overwrite=True)
    dt = time.time() - t
    n = hl.read_matrix_table(out).n_partitions()
    print(f"HAIL {path.split('/')[-1]} min_partitions={parts} import_vcf+write {dt:.2f} s "
          f"(Hail start-up {t - t0:.1f} s, {n} partition(s))")


if __name__ == "__main__":
    main()
