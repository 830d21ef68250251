#!/bin/sh
# apcodec over GNU parallel: four shares on the machines of hosts.txt (one ssh login a
# line; ':' is this machine), each of which sees this folder at the same path.
# Each share appends to summaries/<K>.jsonl; afterwards:
#   apcodec batch-status summaries/ --inputs music/
parallel --sshloginfile hosts.txt --workdir . \
    apcodec encode --shard {}/4 --summary summaries/{}.jsonl music/ codes/ ::: 1 2 3 4
