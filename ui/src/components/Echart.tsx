import { useEffect, useRef } from "react";
import { BarChart, LineChart, ParallelChart, ScatterChart } from "echarts/charts";
import { GridComponent, ParallelComponent, TooltipComponent, VisualMapComponent } from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";

echarts.use([ParallelChart, ScatterChart, LineChart, BarChart, ParallelComponent, GridComponent, TooltipComponent, VisualMapComponent, CanvasRenderer]);

/** An ECharts canvas (only the chart kinds plx draws are bundled). */
export function Echart({
  option,
  height = 320,
  testId,
  onEvents,
}: {
  option: echarts.EChartsCoreOption;
  height?: number;
  testId?: string;
  onEvents?: Record<string, (params: any, chart: echarts.ECharts) => void>;
}) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<echarts.ECharts | null>(null);
  useEffect(() => {
    if (!box.current) return;
    chart.current = echarts.init(box.current, undefined, { renderer: "canvas" });
    const resize = () => chart.current?.resize();
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      chart.current?.dispose();
    };
  }, []);
  useEffect(() => {
    chart.current?.setOption(option, { notMerge: true, lazyUpdate: true });
  }, [option]);
  useEffect(() => {
    const c = chart.current;
    if (!c || !onEvents) return;
    for (const [name, handler] of Object.entries(onEvents)) c.on(name, (p: unknown) => handler(p, c));
    return () => {
      for (const name of Object.keys(onEvents)) c.off(name);
    };
  }, [onEvents]);
  return <div ref={box} style={{ height }} className="echart" data-testid={testId} />;
}
