/* The subcommands of ohm-bench. Each lives in its own file (bench_<name>.c) and takes the arguments that
 * follow its name; it returns the process exit status (0 all good, 1 some run failed, 2 usage error). */
#ifndef OHM_BENCH_H
#define OHM_BENCH_H

int bench_alloc_main(int argc, char **argv);
int bench_buf_main(int argc, char **argv);
int bench_mm_main(int argc, char **argv);
int bench_ffi_main(int argc, char **argv);

#endif /* OHM_BENCH_H */
