// Mounts a component with the app's real plugins: Pinia (the test's active one),
// vue-i18n and the router on in-memory history.
import { mount, flushPromises, type ComponentMountingOptions } from '@vue/test-utils'
import { getActivePinia } from 'pinia'
import { createMemoryHistory } from 'vue-router'
import type { Component } from 'vue'
import { createAppI18n, type Locale } from '@/i18n'
import { createAppRouter } from '@/router'

export async function mountApp<C extends Component>(
  component: C,
  options: { props?: ComponentMountingOptions<C>['props']; path?: string; locale?: Locale } = {},
) {
  const pinia = getActivePinia()
  if (!pinia) throw new Error('no active pinia (tests/setup.ts sets one)')
  const i18n = createAppI18n(options.locale ?? 'en')
  const router = createAppRouter(pinia, createMemoryHistory())
  await router.push(options.path ?? '/')
  await router.isReady()
  const wrapper = mount(component as Component, {
    props: options.props as Record<string, unknown>,
    global: { plugins: [pinia, i18n, router] },
    attachTo: document.body,
  })
  await flushPromises()
  return { wrapper, router, i18n }
}
