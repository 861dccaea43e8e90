"""Allele normalisation against a reference FASTA, as ``bcftools norm -f`` does it.

Left-align and trim (Tan, Abecasis & Kang 2015): drop a shared last base, extending to the left
with the reference base whenever an allele runs empty, then drop shared leading bases while
both alleles keep at least one. Symbolic and ``*`` alleles pass through untouched.
"""

from __future__ import annotations


class Reference:
    def __init__(self, path: str):
        import pysam

        self.path = path
        self.fasta = pysam.FastaFile(path)
        self._names = set(self.fasta.references)

    def contig(self, name: str) -> str | None:
        """The FASTA's own name for a lake contig (``chr1`` may be ``1`` there, ``chrM`` ``MT``)."""
        bare = name[3:] if name.startswith("chr") else name
        mito = {"M": "MT", "MT": "M"}.get(bare)
        for candidate in (name, bare, "chr" + bare, mito, mito and "chr" + mito):
            if candidate in self._names:
                return candidate
        return None

    def base(self, contig: str, pos: int) -> str:
        return self.fasta.fetch(contig, pos - 1, pos).upper()

    def matches(self, contig: str, pos: int, ref: str) -> bool:
        return self.fasta.fetch(contig, pos - 1, pos - 1 + len(ref)).upper() == ref.upper()


def left_align(ref_seq: Reference, contig: str, pos: int, ref: str,
               alt: str) -> tuple[int, str, str, str | None]:
    """Return (pos, ref, alt, problem); ``problem`` says why the site was left as it was."""
    if alt.startswith("<") or alt == "*" or ref == alt:
        return pos, ref, alt, None
    name = ref_seq.contig(contig)
    if name is None:
        return pos, ref, alt, f"contig {contig} is not in {ref_seq.path}"
    if not ref_seq.matches(name, pos, ref):
        return pos, ref, alt, f"REF {ref} does not match the reference at {contig}:{pos}"
    while True:
        changed = False
        if ref and alt and ref[-1] == alt[-1]:
            ref, alt, changed = ref[:-1], alt[:-1], True
        if (not ref or not alt) and pos > 1:
            pos -= 1
            b = ref_seq.base(name, pos)
            ref, alt, changed = b + ref, b + alt, True
        if not changed:
            break
    while len(ref) >= 2 and len(alt) >= 2 and ref[0] == alt[0]:
        ref, alt, pos = ref[1:], alt[1:], pos + 1
    return pos, ref, alt, None

