# (Copied from shared/anchors; adapted: also reports every task's mean and sd.)
# Item 2 (R side): future_sapply(1:8, function(i) {x <- rnorm(1e7); c(mean(x), sd(x))}, future.seed = TRUE)
# usage: Rscript bench_calc_mean.R PLAN [p] [n]    PLAN in sequential | multisession | multicore (2 workers)
suppressPackageStartupMessages({library(future); library(future.apply)})
args <- commandArgs(trailingOnly = TRUE)
pl <- args[1]
p <- if (length(args) > 1) as.integer(args[2]) else 8L
n <- if (length(args) > 2) as.numeric(args[3]) else 1e7
ts <- Sys.time()
if (pl == "sequential") plan(sequential) else if (pl == "multisession") plan(multisession, workers = 2) else plan(multicore, workers = 2)
invisible(value(lapply(1:2, function(i) future(i))))
startup <- as.numeric(Sys.time() - ts, units = "secs")
t0 <- Sys.time()
res <- future_sapply(1:p, function(i) { x <- rnorm(n); c(mean(x), sd(x)) }, future.seed = TRUE)
wall <- as.numeric(Sys.time() - t0, units = "secs")
plan(sequential)
cat(sprintf('RESULT {"item": 2, "system": "R_future_sapply_%s", "p": %d, "n": %.0f, "wall_s": %.3f, "startup_s": %.3f, "first": [%.6f, %.6f], "grand_mean": %.8f, "means": [%s], "sds": [%s]}\n',
            pl, p, n, wall, startup, res[1, 1], res[2, 1], mean(res[1, ]),
            paste(sprintf("%.8f", res[1, ]), collapse = ", "), paste(sprintf("%.8f", res[2, ]), collapse = ", ")))
