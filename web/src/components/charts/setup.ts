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
