import { useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { api } from "../api/client";

/** Live updates: long-poll the project's change feed and refresh what an event touches. */
export function useProjectEvents(user: string, project: string): void {
  const queryClient = useQueryClient();
  useEffect(() => {
    let stopped = false;
    let after: string | undefined;
    const controller = new AbortController();
    async function loop() {
      // Start from now: read the current cursor without waiting.
      while (!stopped) {
        try {
          const { data, response } = await api.GET("/api/v1/{username}/{project}/events", {
            params: { path: { username: user, project }, query: { after, wait: after ? 20 : 0, limit: 500 } },
            signal: controller.signal,
          });
          if (!response.ok || !data) throw new Error(String(response.status));
          const first = after === undefined;
          after = data.next;
          if (!first && data.results.length) {
            const kinds = new Set(data.results.map((e) => e.object_type));
            if (data.results.some((e) => e.kind === "metric"))
              queryClient.invalidateQueries({ queryKey: ["series", user, project] });
            if (kinds.has("experiment") || kinds.has("experiment_job"))
              queryClient.invalidateQueries({ queryKey: ["experiments", user, project] });
            if (kinds.has("group") || kinds.has("experiment"))
              queryClient.invalidateQueries({ queryKey: ["groups", user, project] });
            if (kinds.has("job") || kinds.has("build"))
              queryClient.invalidateQueries({ queryKey: ["runs", user, project] });
          }
        } catch {
          if (stopped) return;
          await new Promise((r) => setTimeout(r, 3000));
        }
      }
    }
    loop();
    return () => {
      stopped = true;
      controller.abort();
    };
  }, [user, project, queryClient]);
}
