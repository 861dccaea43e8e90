"""Generated annotation sources for the demo: gene models and a ClinVar-format VCF.

No real GENCODE or ClinVar file ships with the project, yet the curation DAG needs both to say
which gene a variant hits and whether it is pathogenic. These two small files stand in for
them: the EGFR, BRCA1 and BRCA2 genes at their real GRCh38 coordinates with a simplified exon
structure, and ClinVar-layout records marking the demo's pathogenic SNVs ``Pathogenic`` and a
few background sites of the demo VCF ``Benign``. Both say in their header that they are
generated demo files; their VariationIDs (9000001...) are not real ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omicslake.demo_population import SITES, Site

CLINVAR_RELEASE = "2026-01-05"
REVIEWED = "criteria_provided,_multiple_submitters,_no_conflicts"


@dataclass(frozen=True)
class GeneModel:
    """One gene with one transcript: exons, CDS pieces, start and stop codons (1-based, closed)."""

    name: str
    ncbi_id: int
    gene_id: str
    transcript_id: str
    contig: str
    strand: str
    exons: tuple[tuple[int, int], ...]
    cds: tuple[tuple[int, int], ...]
    start_codon: tuple[int, int]
    stop_codon: tuple[int, int]

    @property
    def span(self) -> tuple[int, int]:
        return min(a for a, _ in self.exons), max(b for _, b in self.exons)


GENES = (
    GeneModel("EGFR", 1956, "ENSG00000146648", "ENST00000275493", "chr7", "+",
              ((55019017, 55019365), (55191719, 55191874), (55209979, 55211628)),
              ((55019278, 55019365), (55191719, 55191874), (55209979, 55210997)),
              (55019278, 55019280), (55210998, 55211000)),
    GeneModel("BRCA1", 672, "ENSG00000012048", "ENST00000357654", "chr17", "-",
              ((43044295, 43045802), (43091435, 43094860), (43124017, 43124115), (43125271, 43125483)),
              ((43045678, 43045802), (43091435, 43094860), (43124017, 43124096)),
              (43124094, 43124096), (43045675, 43045677)),
    GeneModel("BRCA2", 675, "ENSG00000139618", "ENST00000380152", "chr13", "+",
              ((32315508, 32315667), (32316422, 32316527), (32336265, 32341196), (32398162, 32400268)),
              ((32316461, 32316527), (32336265, 32341196), (32398162, 32398767)),
              (32316461, 32316463), (32398768, 32398770)),
)
GTF_HEADER = ("##description: omicslake demo gene models (GENERATED for the demo; real GRCh38 gene "
              "coordinates, simplified exon structure; not a real annotation release)\n"
              "##provider: omicslake demo\n##format: gtf\n")


def gtf_lines(g: GeneModel) -> list[str]:
    """gene, transcript, exon, CDS, start_codon and stop_codon lines of one gene."""
    gene_attrs = f'gene_id "{g.gene_id}"; gene_type "protein_coding"; gene_name "{g.name}";'
    attrs = (f'gene_id "{g.gene_id}"; transcript_id "{g.transcript_id}"; gene_type "protein_coding"; '
             f'gene_name "{g.name}"; transcript_type "protein_coding";')
    lo, hi = g.span

    def line(kind: str, a: int, b: int, text: str = attrs) -> str:
        return f"{g.contig}\tDEMO\t{kind}\t{a}\t{b}\t.\t{g.strand}\t.\t{text}"

    return [line("gene", lo, hi, gene_attrs), line("transcript", lo, hi),
            *(line("exon", a, b) for a, b in g.exons), *(line("CDS", a, b) for a, b in g.cds),
            line("start_codon", *g.start_codon), line("stop_codon", *g.stop_codon)]


def write_gtf(path: Path) -> Path:
    """The demo gene models as a GTF (written once; same bytes every time)."""
    if not path.exists():
        path.write_text(GTF_HEADER + "".join(f"{x}\n" for g in GENES for x in gtf_lines(g)))
    return path


def benign_sites(vcf: Path, per_gene: int = 2) -> list[Site]:
    """The first ``per_gene`` biallelic background SNVs of the demo VCF inside each gene: the
    sites the demo ClinVar file calls Benign."""
    import pysam

    pathogenic = {(s.contig, s.pos) for s in SITES}
    out: list[Site] = []
    with pysam.VariantFile(str(vcf)) as fh:
        for g in GENES:
            found = [r for r in fh.fetch(g.contig, g.span[0] - 1, g.span[1])
                     if len(r.alts or ()) == 1 and len(r.ref) == 1 == len(r.alts[0])
                     and (r.chrom, r.pos) not in pathogenic][:per_gene]
            out += [Site(f"{g.name}_benign_{k}", g.name, g.ncbi_id, r.chrom, r.pos, r.ref, r.alts[0],
                         str(9000101 + len(out) + k)) for k, r in enumerate(found)]
    return out


def _clinvar_header() -> str:
    info = '##INFO=<ID={},Number={},Type=String,Description="{}">\n'
    return ("##fileformat=VCFv4.1\n"
            f"##fileDate={CLINVAR_RELEASE}\n"
            "##source=omicslake demo: a GENERATED file in ClinVar's VCF layout, NOT real ClinVar data\n"
            "##reference=GRCh38\n"
            + info.format("CLNSIG", ".", "Clinical significance (demo)")
            + info.format("CLNREVSTAT", ".", "Review status (demo)")
            + info.format("GENEINFO", "1", "Gene symbol:NCBI gene id")
            + "".join(f"##contig=<ID={c}>\n" for c in ("7", "13", "17"))
            + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")


def _clinvar_line(site: Site, significance: str, review: str) -> str:
    contig = site.contig.removeprefix("chr")
    return (f"{contig}\t{site.pos}\t{site.variation_id}\t{site.ref}\t{site.alt}\t.\t.\t"
            f"CLNSIG={significance};CLNREVSTAT={review};GENEINFO={site.gene}:{site.gene_id}")


def write_clinvar(path: Path, benign: list[Site]) -> Path:
    """``path`` (x.vcf.gz) bgzipped and tabix-indexed: the pathogenic demo SNVs and ``benign``."""
    import pysam

    if path.exists() and Path(f"{path}.tbi").exists():
        return path
    lines = [(s, _clinvar_line(s, "Pathogenic", REVIEWED)) for s in SITES]
    lines += [(s, _clinvar_line(s, "Benign", "criteria_provided,_single_submitter")) for s in benign]
    order = {"chr7": 0, "chr13": 1, "chr17": 2}
    lines.sort(key=lambda x: (order[x[0].contig], x[0].pos))
    plain = path.with_suffix("")
    plain.write_text(_clinvar_header() + "".join(f"{text}\n" for _, text in lines))
    pysam.tabix_index(str(plain), preset="vcf", force=True)
    return path


PRIMEKG_HEADER = ("relation,display_relation,x_index,x_id,x_type,x_name,x_source,"
                  "y_index,y_id,y_type,y_name,y_source")
DRUG_TARGETS = (("DB00530", "Erlotinib"), ("DB00317", "Gefitinib"), ("DB08916", "Afatinib"),
                ("DB09330", "Osimertinib"))


def write_primekg(path: Path) -> Path:
    """A small drug-target graph in PrimeKG's kg.csv format (GENERATED for the demo: the EGFR
    inhibitors and their target, both directions as PrimeKG lists them), so the demo can show
    the multi-hop question of docs/querying.md. Not a PrimeKG release."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [PRIMEKG_HEADER]
    for k, (drug_id, name) in enumerate(DRUG_TARGETS):
        drug = f"{20000 + k},{drug_id},drug,{name},DrugBank"
        rows += [f"drug_protein,target,{drug},1,1956,gene/protein,EGFR,NCBI",
                 f"drug_protein,target,1,1956,gene/protein,EGFR,NCBI,{drug}"]
    rows += ["protein_protein,ppi,1,1956,gene/protein,EGFR,NCBI,2,2064,gene/protein,ERBB2,NCBI",
             "protein_protein,ppi,2,2064,gene/protein,ERBB2,NCBI,1,1956,gene/protein,EGFR,NCBI"]
    path.write_text("\n".join(rows) + "\n")
    return path
