# (Copied unchanged from shared/anchors.)
# Item 1 (R side): per-task overhead.
# usage: Rscript bench_overhead.R PLAN MODE N
#   PLAN in sequential | multisession | multicore  (workers = 2)
#   MODE in lapply   : future_lapply(1:N, function(i) i + 1)  (default chunking)
#           lapply1  : same but future.chunk.size = 1 (one future per element)
#           futures  : explicit loop fs[[i]] <- future(i + 1); value(fs)
# optional 4th arg WAIT: options(future.wait.interval = WAIT)
# Worker start-up (plan()) is timed separately and excluded from total_s.
suppressPackageStartupMessages({library(future); library(future.apply)})
args <- commandArgs(trailingOnly = TRUE)
pl <- args[1]; mode <- args[2]; N <- as.integer(args[3])
# optional 4th arg: future.wait.interval (seconds; package default 0.01) -- the polling
# interval used while waiting for a free worker / for resolution
if (length(args) > 3) options(future.wait.interval = as.numeric(args[4]))
ts <- Sys.time()
if (pl == "sequential") plan(sequential) else if (pl == "multisession") plan(multisession, workers = 2) else plan(multicore, workers = 2)
# warm-up: make sure workers are up
invisible(value(lapply(1:2, function(i) future(i))))
startup <- as.numeric(Sys.time() - ts, units = "secs")
t0 <- Sys.time()
if (mode == "lapply") {
  res <- future_lapply(1:N, function(i) i + 1)
} else if (mode == "lapply1") {
  res <- future_lapply(1:N, function(i) i + 1, future.chunk.size = 1)
} else {
  fs <- vector("list", N)
  for (i in 1:N) fs[[i]] <- future(i + 1)
  res <- value(fs)
}
tot <- as.numeric(Sys.time() - t0, units = "secs")
ok <- (sum(unlist(res)) == sum(as.numeric(1:N)) + N) && length(res) == N
plan(sequential)
cat(sprintf('RESULT {"item": 1, "system": "R_future_%s_%s%s", "N": %d, "startup_s": %.3f, "total_s": %.4f, "tasks_per_s": %.1f, "us_per_task": %.2f, "correct": %s}\n',
            mode, pl, if (length(args) > 3) paste0("_wait", args[4]) else "", N, startup, tot, N / tot, tot / N * 1e6, if (ok) "true" else "false"))
