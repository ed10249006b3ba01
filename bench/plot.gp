# bench/plot.gp: run by bench/run.sh in the results dir, on the data files
# bench/report.py wrote. latency.png: netfence's added ADD/DEL ms vs pods,
# one line per policy count; dataplane.png: throughput and connection-rate
# ratios to no filtering.
set terminal pngcairo size 1100,420 font ",10"
set output "latency.png"
set multiplot layout 1,2 title "netfence: added CNI latency (median ms over baseline bridge+host-local; bars to p90)"
set xlabel "pods attached"
set ylabel "added ms"
set logscale x
set grid
set key top left
ncol = int(system("head -1 lat-add.dat | wc -w"))   # "#", "pods", then 2 per size
titles = system("head -1 lat-add.dat | tr ' ' '\\n' | grep _med | sed 's/pol//; s/_med//'")
set title "ADD"
plot for [i=1:(ncol-2)/2] "lat-add.dat" using 1:(column(2*i)):(column(2*i)):(column(2*i+1)) with yerrorlines title word(titles,i)." policies"
set title "DEL"
plot for [i=1:(ncol-2)/2] "lat-del.dat" using 1:(column(2*i)):(column(2*i)):(column(2*i+1)) with yerrorlines title word(titles,i)." policies"
unset multiplot
if (system("test -s dp.dat && echo 1") eq "1") {
	set output "dataplane.png"
	set terminal pngcairo size 800,420 font ",10"
	unset logscale x
	set title "Dataplane pod -> external host: ratio to no filtering (median)"
	set xlabel ""
	set ylabel "ratio"
	set yrange [0:1.2]
	set style data histogram
	set style histogram cluster gap 1
	set style fill solid 0.7 border -1
	set key top right
	plot "dp.dat" using 2:xtic(1) title "TCP throughput", "" using 3 title "new connections/s", 0.95 with lines dt 2 lc rgb "black" title "95 %"
}
