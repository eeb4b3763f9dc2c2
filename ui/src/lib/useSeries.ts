import { useQueries } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";

export type SeriesSet = { experiment: number; series: { name: string; x: number[]; y: number[]; count: number }[] };

/** Downsampled series of several experiments (one request each, in parallel). */
export function useSeries(
  user: string,
  project: string,
  ids: number[],
  opts: { names?: string[]; points?: number; axis?: "step" | "time"; range?: [number, number] | null; refetch?: number | false },
) {
  return useQueries({
    queries: ids.map((id) => ({
      queryKey: ["series", user, project, id, opts.names?.join(",") ?? "", opts.points ?? 1000, opts.axis ?? "step", opts.range ?? null],
      queryFn: () =>
        unwrap(
          api.GET("/api/v1/{username}/{project}/experiments/{exp_id}/metrics/series", {
            params: {
              path: { username: user, project, exp_id: id },
              query: {
                names: opts.names?.length ? opts.names.join(",") : undefined,
                points: opts.points ?? 1000,
                axis: opts.axis ?? "step",
                x_min: opts.range?.[0],
                x_max: opts.range?.[1],
              },
            },
          }),
        ) as Promise<SeriesSet>,
      refetchInterval: opts.refetch ?? false,
    })),
  });
}
