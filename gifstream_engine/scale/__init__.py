"""Training a run's GOPs in several processes: one GOP per process (`gop_job`), a Ray backend that schedules
them on a cluster (`ray_backend`), assembling a run from its GOP folders (`assemble`) and an Open Job
Description template for render farms (`farm_job`). Processes exchange paths on the run folder, never tensors."""
