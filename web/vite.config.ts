/// <reference types="vitest/config" />
import { fileURLToPath, URL } from 'node:url'
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// The backend serves /api (RealWorld blog) and /v1 (inference and orchestrator).
// BLOGINFER_API points the dev server elsewhere (default: the single-process binary).
const backend = process.env.BLOGINFER_API ?? 'http://127.0.0.1:8080'
const proxy = {
  '/api': { target: backend, changeOrigin: true },
  '/v1': { target: backend, changeOrigin: true },
}

export default defineConfig({
  plugins: [vue()],
  resolve: {
    alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) },
  },
  define: {
    __VUE_I18N_FULL_INSTALL__: true,
    __VUE_I18N_LEGACY_API__: false,
    __INTLIFY_PROD_DEVTOOLS__: false,
  },
  server: { proxy },
  preview: { proxy },
  build: {
    outDir: 'dist',
    rolldownOptions: {
      output: {
        // The framework goes in one long-cached chunk; chart.js, marked and DOMPurify stay
        // in the lazily loaded pages that use them.
        codeSplitting: {
          groups: [{ name: 'framework', test: /node_modules[\\/](@vue|vue|vue-router|pinia|vue-i18n|@intlify)[\\/]/ }],
        },
      },
    },
  },
  test: {
    environment: 'jsdom',
    include: ['tests/**/*.spec.ts'],
    setupFiles: ['tests/setup.ts'],
    restoreMocks: true,
    unstubGlobals: true,
  },
})
