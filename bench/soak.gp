# bench/soak.gp - the soak plot (bench/soak.sh):
#   gnuplot -e "csv='soak.csv'; png='soak.png'; ttl='chatd soak'" bench/soak.gp
set terminal pngcairo size 1000,1000 font ",10" noenhanced
set output png
set datafile separator ","
set key autotitle columnhead below horizontal
set grid
set multiplot layout 3,1 title ttl
set xlabel "minutes"
set ylabel "MiB"
set y2label "open files"
set y2tics
set ytics nomirror
set yrange [0:*]
set y2range [0:*]
plot csv using 1:2 with linespoints title "RSS", csv using 1:26 with linespoints title "RSS anonymous (heap, stacks, caches)", csv using 1:27 with lines title "RSS mapped files (SQLite mmap, <= 256 MiB)", csv using 1:3 with lines title "peak RSS", csv using 1:4 axes x1y2 with linespoints title "open files (right axis)"
unset y2label
unset y2tics
set ytics mirror
set ylabel "ms (per-minute percentile)"
set logscale y
set yrange [*:*]
plot csv using 1:13 with linespoints title "durable ack p99", csv using 1:12 with lines title "durable ack p50", csv using 1:17 with linespoints title "fanout delivery p99", csv using 1:19 with linespoints title "sampler ack p99", csv using 1:21 with linespoints title "history read p99"
unset logscale y
set ylabel "cores (of 2)"
set yrange [0:2.2]
plot csv using 1:7 with linespoints title "chatd", csv using 1:8 with lines title "load generators", csv using 1:10 with lines title "other processes (other agents' builds, tests, fuzzers)", csv using 1:9 with lines title "machine busy"
unset multiplot
