#!/bin/sh
#$ -S /bin/sh
#$ -N fastqc
# A classic workload: quality control of sequencing reads with FastQC, in its own image.
#   examples/fastqc/build-image                  # once, as root: builds qdock/fastqc:0.11.9
#   qsub -v IMAGE=qdock/fastqc:0.11.9 -cwd -l h_vmem=2G fastqc.sh reads.fq
# The report (reads_fastqc.html, reads_fastqc.zip) lands in the working directory.
set -eu
reads=${1:-sample.fq}
if [ ! -e "$reads" ]; then
    # No input given: make a small synthetic FASTQ, so the example runs anywhere.
    i=0
    while [ "$i" -lt 2000 ]; do
        echo "@read$i"
        echo "ACGTACGTTGCAACGTACGTTGCAACGTACGTTGCAACGTACGTTGCAACGTACGT"
        echo "+"
        echo "IIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIII"
        i=$((i + 1))
    done >"$reads"
fi
fastqc --version
# FastQC's JVM wants more virtual memory than h_vmem suggests; -t follows the slots.
fastqc -t "${NSLOTS:-1}" -o . --dir "${TMPDIR:-/tmp}" "$reads"
ls -l ./*_fastqc.*
