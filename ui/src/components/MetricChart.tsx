import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { align, smooth } from "../lib/series";

export type Line = { label: string; x: number[]; y: number[] };
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];

/** One metric's curves (one line per experiment), with zoom by dragging, log scale and smoothing.
 * `onZoom` gets the x range selected so the caller can fetch it at full resolution. */
export function MetricChart({
  title,
  lines,
  log = false,
  smoothing = 0,
  time = false,
  onZoom,
}: {
  title: string;
  lines: Line[];
  log?: boolean;
  smoothing?: number;
  time?: boolean;
  onZoom?: (range: [number, number] | null) => void;
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!box.current) return;
    const data = align(lines.map((l) => ({ x: l.x, y: smooth(l.y, smoothing) })));
    const width = Math.max(320, box.current.clientWidth);
    const plot = new uPlot(
      {
        title,
        width,
        height: 260,
        scales: { x: { time }, y: { distr: log ? 3 : 1 } },
        series: [{ label: time ? "time" : "step" }, ...lines.map((l, i) => ({ label: l.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true }))],
        hooks: {
          setSelect: [
            (u) => {
              if (!onZoom || u.select.width < 4) return;
              onZoom([u.posToVal(u.select.left, "x"), u.posToVal(u.select.left + u.select.width, "x")]);
            },
          ],
        },
      },
      data as uPlot.AlignedData,
      box.current,
    );
    return () => plot.destroy();
  }, [title, lines, log, smoothing, time, onZoom]);
  return <div ref={box} className="chart" data-testid={`chart-${title}`} />;
}
