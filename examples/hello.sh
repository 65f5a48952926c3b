#!/bin/sh
#$ -S /bin/sh
# A first qdock job. Submit it with an image to run it in a container:
#   qsub -v IMAGE=qdock/busybox:1 -cwd hello.sh
# Without IMAGE it runs natively, as any Grid Engine job.
echo "hello from $(hostname)"
id
if [ -r /qdock-image-marker ]; then
    echo "image marker: $(cat /qdock-image-marker)"
else
    echo "image marker: none (not in the qdock test image)"
fi
echo "os-release ID: $(sed -n 's/^ID=//p' /etc/os-release 2>/dev/null)"
echo "JOB_ID=$JOB_ID SGE_TASK_ID=$SGE_TASK_ID"
# A file in the working directory (-cwd): it must appear on the host, owned by the user.
out="hello-$JOB_ID.txt"
echo "hello from job $JOB_ID" >"$out"
echo "wrote $(pwd)/$out"
