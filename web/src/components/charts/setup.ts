// Registers only the chart.js pieces the dashboard uses (keeps the bundle small).
import {
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineElement,
  PointElement,
  Tooltip,
  type ChartOptions,
} from 'chart.js'

Chart.register(CategoryScale, LinearScale, PointElement, LineElement, BarElement, Legend, Tooltip)

export const PALETTE = {
  green: '#5cb85c',
  blue: '#3b82c4',
  orange: '#e0873a',
  red: '#d9534f',
  purple: '#8e6cc0',
  grey: '#8a948a',
} as const

export interface Series {
  label: string
  data: (number | null)[]
  color: string
  dashed?: boolean
  /** Plot against the right-hand axis. */
  right?: boolean
}

export function baseOptions<T extends 'line' | 'bar'>(): ChartOptions<T> {
  return {
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    interaction: { mode: 'index', intersect: false },
    plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } } },
  } as ChartOptions<T>
}

export interface LineOptionsInput {
  xTitle?: string
  yMin?: number
  yMax?: number
  yFormat?: (value: number) => string
  /** Some series are plotted against a right-hand axis. */
  hasRight?: boolean
}

/** The options of the line charts (loss, accuracy, inference rate and latency). */
export function lineOptions(input: LineOptionsInput): ChartOptions<'line'> {
  const { xTitle, yMin, yMax, yFormat, hasRight = false } = input
  const tick = yFormat ? { callback: (v: string | number) => yFormat(Number(v)) } : {}
  const base = baseOptions<'line'>()
  return {
    ...base,
    plugins: {
      ...base.plugins,
      // Line samples (dashed for dashed series) rather than filled boxes.
      legend: { position: 'bottom', labels: { usePointStyle: true, pointStyle: 'line', pointStyleWidth: 28 } },
    },
    scales: {
      x: { title: { display: Boolean(xTitle), text: xTitle ?? '' } },
      y: { min: yMin, max: yMax, ticks: tick },
      // The right-hand axis holds latencies and the like: never below zero (with all-zero
      // data chart.js would otherwise centre it on 0 and label it down to -1).
      ...(hasRight ? { y1: { position: 'right' as const, min: 0, beginAtZero: true, grid: { drawOnChartArea: false } } } : {}),
    },
  }
}
